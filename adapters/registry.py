"""Channel kinds registered by name. Every package in `adapters/` is imported once, so
adding a kind means adding its folder and nothing else."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from adapters.base import ChannelKind

K = TypeVar("K", bound=type[ChannelKind[Any]])

_KINDS: dict[str, ChannelKind[Any]] = {}
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
        if module.ispkg and not module.name.startswith("_"):
            importlib.import_module(f"adapters.{module.name}")


def kinds() -> dict[str, ChannelKind[Any]]:
    """Every registered kind, by name (a new dict: the caller may keep it)."""
    _load_all()
    return dict(sorted(_KINDS.items()))


def find(name: str) -> ChannelKind[Any] | None:
    _load_all()
    return _KINDS.get(name)


def names() -> list[str]:
    _load_all()
    return sorted(_KINDS)
