"""HTML pages of `vsm serve`, drawn from the same figure records the JSON answers carry."""
