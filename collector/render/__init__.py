"""The renderers: they draw the figure records of collector.present as terminal text, email (HTML, plain
text, PNG charts) and, beside them, web pages; none of them queries the database."""
