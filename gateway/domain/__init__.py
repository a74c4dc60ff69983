"""Types and pure decisions: no I/O, no broker, store or web."""
