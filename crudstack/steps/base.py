"""What every step shares: the Step shape and the ownership rule."""

from __future__ import annotations

from typing import Protocol

from crudstack.config import MANAGED_BY, Config
from crudstack.errors import OwnershipError
from crudstack.plan import Action, Change, Context


class Step(Protocol):
    number: str        # as in the console tutorial
    title: str
    console: str       # the console path the step replays

    def plan(self, ctx: Context) -> list[Change]:
        """Read-only: what provisioning would change."""

    def plan_teardown(self, ctx: Context) -> list[Change]:
        """Read-only: what teardown would delete."""


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_dict(tags: list[dict[str, str]] | dict[str, str] | None) -> dict[str, str]:
    if not tags:
        return {}
    if isinstance(tags, dict):
        return dict(tags)
    return {t["Key"]: t["Value"] for t in tags}


def is_ours(tags: dict[str, str], config: Config) -> bool:
    return tags.get("managed-by") == MANAGED_BY and tags.get("crudstack-stack") == config.stack


def ensure_ours(ctx: Context, step: str, kind: str, name: str, tags: dict[str, str]) -> None:
    """A resource with our name but not our tag is someone else's: stop, never change it."""
    if not is_ours(tags, ctx.config):
        raise OwnershipError(
            step=step,
            resource=f"{kind} {name}",
            cause=f"exists but is not tagged managed-by={MANAGED_BY}, crudstack-stack={ctx.config.stack}, so it is not ours to change",
            fix="pick another stack name in config.yaml (stack:), or delete/rename that resource yourself",
        )


def not_ours(kind: str, name: str) -> Change:
    return Change(kind, name, Action.SKIP, note="same name but not tagged as ours: left alone")
