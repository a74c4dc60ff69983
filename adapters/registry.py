"""Channel kinds registered by name. Every module in `adapters/` is imported once,
so adding a kind means adding its module and nothing else."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from adapters.base import ChannelKind

K = TypeVar("K", bound=type[ChannelKind])

_KINDS: dict[str, ChannelKind] = {}
_SKIP = {"base", "registry"}
_loaded = False


def register(cls: K) -> K:
    if cls.name in _KINDS:
        raise RuntimeError(f"channel kind {cls.name!r} registered twice")
    _KINDS[cls.name] = cls()
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import adapters

    for module in pkgutil.iter_modules(adapters.__path__):
        if module.name not in _SKIP and not module.name.startswith("_"):
            importlib.import_module(f"adapters.{module.name}")


def find(name: str) -> ChannelKind | None:
    _load_all()
    return _KINDS.get(name)


def names() -> list[str]:
    _load_all()
    return sorted(_KINDS)
