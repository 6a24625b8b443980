"""How a patch replaces a piece of moto: loudly, if moto no longer has it."""

from __future__ import annotations

from typing import Any


class MotoChanged(RuntimeError):
    """What a patch replaces is no longer where moto 5.2.1 had it."""


def replace(owner: Any, name: str, replacement: Any) -> Any:
    """Put ``replacement`` in place of ``owner.name`` and return what was there. Assigning a name moto
    no longer has would succeed silently and patch nothing: refuse instead."""
    if not hasattr(owner, name):
        raise MotoChanged(f"moto has no {getattr(owner, '__name__', owner)}.{name} any more: "
                          "update crudstack/local/patches/ for this moto version")
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    return original


def add(owner: Any, name: str, value: Any) -> None:
    """Give ``owner`` a ``name`` moto does not have (an action it does not implement). If moto has
    come to implement it, ours may no longer be wanted: refuse instead of hiding moto's."""
    if hasattr(owner, name):
        raise MotoChanged(f"moto now has {getattr(owner, '__name__', owner)}.{name}: "
                          "check whether crudstack/local/patches/ still needs to add it")
    setattr(owner, name, value)
