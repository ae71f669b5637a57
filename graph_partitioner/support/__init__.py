"""Per-op support rules. Importing this package registers every rule: one module ``rules_<family>.py`` per op
family, named like the family's references (ep_trtpy/ops/<family>.py) and lowering
(ep_trtpy/builder/lowering/<family>.py); a new file only needs its ``@rule`` decorators."""

import importlib
import pkgutil

from graph_partitioner.support.registry import SupportContext, check, rules

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name.startswith("rules_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["SupportContext", "check", "rules"]
