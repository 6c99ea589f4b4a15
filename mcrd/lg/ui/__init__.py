"""The looking glass web page: static files served by `mcrd.lg.webui` (package data)."""
