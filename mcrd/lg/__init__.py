"""The looking glass (Megaport-shaped views), the HTTP API embedded in the daemon, metrics, and `mcrd lg`."""
