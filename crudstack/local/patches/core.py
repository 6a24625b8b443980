"""How a patch replaces a piece of moto: loudly, if moto no longer has it."""

from __future__ import annotations

import inspect
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
    if callable(original) and callable(replacement) and not _same_call(original, replacement):
        raise MotoChanged(f"moto's {getattr(owner, '__name__', owner)}.{name} is now called as "
                          f"{name}{inspect.signature(original)}, and the patch replacing it takes "
                          f"{name}{inspect.signature(replacement)}: update crudstack/local/patches/ for this moto version")
    setattr(owner, name, replacement)
    return original


def _same_call(original: Any, replacement: Any) -> bool:
    """Whether ``replacement`` takes the calls ``original`` takes: as many required arguments, at least its
    public optional ones, its keyword-only names (a *args/**kwargs wrapper takes any)."""
    try:
        theirs, ours = inspect.signature(original).parameters.values(), inspect.signature(replacement).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
        return True
    kinds = {p.kind for p in ours}
    if inspect.Parameter.VAR_POSITIONAL in kinds and inspect.Parameter.VAR_KEYWORD in kinds:
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

    def shape(params: Any, public_only: bool) -> tuple[int, int, set[str]]:
        params = [p for p in params if not (public_only and p.name.startswith("_"))]
        required = sum(1 for p in params if p.kind in positional and p.default is p.empty)
        return required, sum(1 for p in params if p.kind in positional), {
            p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    their_required, their_positional, their_keywords = shape(theirs, True)
    our_required, our_positional, our_keywords = shape(ours, False)
    return (their_required == our_required and our_positional >= their_positional
            and (their_keywords <= our_keywords or inspect.Parameter.VAR_KEYWORD in kinds))


def add(owner: Any, name: str, value: Any) -> None:
    """Give ``owner`` a ``name`` moto does not have (an action it does not implement). If moto has
    come to implement it, ours may no longer be wanted: refuse instead of hiding moto's."""
    if hasattr(owner, name):
        raise MotoChanged(f"moto now has {getattr(owner, '__name__', owner)}.{name}: "
                          "check whether crudstack/local/patches/ still needs to add it")
    setattr(owner, name, value)
