"""`parity.watch`: the golden record keeps guarding a model while it serves.

``parity.watch(...)`` is a function of the top-level package and this package's name
too: importing a submodule binds ``parity.watch`` to this package, so the package is
made callable with the function's signature and ``parity.watch(...)`` means the same
whichever of the two the name holds. Importing it stays light (no torch).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from parity.watch.watcher import watch

        return watch(*args, **kwargs)

    @property
    def __signature__(self) -> Any:
        import inspect

        from parity.watch.watcher import watch

        return inspect.signature(watch)


sys.modules[__name__].__class__ = _CallablePackage
