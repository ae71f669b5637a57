"""Per-op support rules. Importing this package registers every rule (one module per op family)."""

from graph_partitioner.support import (  # noqa: F401 - imported for their registrations
    rules_elementwise,
    rules_internal,
    rules_linalg,
    rules_movement,
    rules_normalization,
    rules_pool,
    rules_reduce,
    rules_shape,
)
from graph_partitioner.support.registry import SupportContext, check, rules

__all__ = ["SupportContext", "check", "rules"]
