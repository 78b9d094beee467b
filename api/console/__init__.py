"""The operator console: a single-page app of static files, a client of the public API."""
