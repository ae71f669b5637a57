"""Per-op numpy references and shape inference (see registry.py)."""
