"""The roles a process runs: ingest, router, outbound, desk (and the queue monitor)."""
