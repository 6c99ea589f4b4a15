"""Importers: other tools' descriptions of an MCR design turned into an mcrd config (pure: text in, text out)."""
