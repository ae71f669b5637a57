"""Per-op numpy references and shape inference (the API is registry.py).

Modules by family: elementwise (via the Pointwise program semantics of pointwise_program / pointwise_ops), reduce,
normalization, linalg, pooling, movement, shape, resize, internal (ep_trtpy::Pointwise, FusedConv, FusedMatMul);
executor runs and infers whole graphs; _common and _spatial hold shared helpers.
"""
