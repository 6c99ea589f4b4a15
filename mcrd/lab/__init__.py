"""`mcrd lab`: build a containerlab topology file on bare network namespaces (no Docker needed).

`topology` reads and checks the file, `state` is the crash-safe record of what a lab created, `runner` does
up/status/exec/down, `sessions` reads BGP session states from the FRR and BIRD nodes.
"""
