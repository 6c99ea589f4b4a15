"""Hub benchmark: mcrd, BIRD and FRR doing the same MCR hub job in network namespaces (docs/BENCHMARK-HUB.md)."""
