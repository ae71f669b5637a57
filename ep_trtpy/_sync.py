"""Process-wide synchronization helpers: work done once from any number of threads, and one build per key.

    _load_all = Once(lambda: import_submodules("ep_trtpy.ops", skip=("registry",)))
    _load_all()                   # every thread returns only after the imports are done

    _builds = KeyedLocks()
    with _builds.hold(path):       # threads asking for the same key wait here; other keys go on
        ...

The rule behind both: a flag that says "done" is set only after the work is done, and it is read twice, once
without the lock (the fast path, safe because it only ever goes from False to True) and once under it.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager


class Once:
    """Call `fn` once per process, the first time the object is called, from whichever thread comes first; every
    other caller blocks until it has returned. If `fn` raises, the next call tries again. A call from inside `fn`
    on the same thread (a module that `fn` imports asking for the registry being filled) returns at once."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._done = False
        self._lock = threading.RLock()
        self._running_on: int | None = None

    @property
    def done(self) -> bool:
        return self._done

    def __call__(self) -> None:
        if self._done:
            return
        with self._lock:
            if self._done or self._running_on == threading.get_ident():
                return
            self._running_on = threading.get_ident()
            try:
                self._fn()
                self._done = True
            finally:
                self._running_on = None


def import_submodules(package: str, skip: tuple[str, ...] = ()) -> None:
    """Import every module of `package` (not recursively) except the names in `skip`, so that their decorators
    register what they define."""
    pkg = importlib.import_module(package)
    for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if m.name not in skip:
            importlib.import_module(f"{package}.{m.name}")


class KeyedLocks:
    """One lock per key, made on first use and dropped when nobody holds or waits for it (so the table does not
    grow with the keys seen)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)
