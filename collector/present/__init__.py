"""The figures: modules that read the mapped views and return plain records every renderer draws.

Nothing here draws or prints; the email, terminal and web renderers beside it (collector.render) only
turn these records into text, HTML or images, and each record's to_json() is what a page answers as JSON.
"""
