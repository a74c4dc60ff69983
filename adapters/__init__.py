"""Channel kinds: one module per kind, registered by name (see adapters/registry.py)."""
