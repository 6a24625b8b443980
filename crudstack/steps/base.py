"""What every step shares: the Step shape, the ownership rule, and what steps 4 and 5 both need of the REST API
(its paths, the tagging of its parts)."""

from __future__ import annotations

from typing import Callable, Protocol

from crudstack.calls import Call, Ref
from crudstack.config import MANAGED_BY, Config
from crudstack.errors import OwnershipError
from crudstack.plan import Action, Change, Context


class Step(Protocol):
    number: str        # as in the console tutorial
    title: str

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
            fix="pick another stack name in config.yaml (stack:), or delete/rename that resource yourself; if it is the stack "
                "you built by hand in the console, python provision.py --adopt takes it over (README, 'Adopt the stack ...')",
        )


def not_ours(kind: str, name: str) -> Change:
    return Change(kind, name, Action.SKIP, note="same name but not tagged as ours: left alone")


def tag_changes(ctx: Context, kind: str, name: str, have: dict[str, str], calls: Callable[[dict[str, str]], list],
                after: tuple[str, ...] = ()) -> list[Change]:
    """Tags config.yaml asks for that an existing resource of ours lacks or holds with another value: set them.

    A key on the resource that config.yaml does not name is left alone, and the plan says so: nothing tells a
    tag removed from config.yaml from one that someone else (a cost-allocation script, the console) added.
    `calls` makes the records that set the tags it is given."""
    wanted = ctx.config.all_tags
    missing = {k: v for k, v in sorted(wanted.items()) if have.get(k) != v}
    extra = sorted(k for k in have if k not in wanted and not k.startswith("aws:"))
    note = (f"tag{'s' if len(extra) > 1 else ''} {', '.join(extra)} not in config.yaml: left in place, as it may be "
            "someone else's; remove it by hand if it was ours") if extra else ""
    if missing:
        return [Change(f"{kind} tags", name, Action.UPDATE, {f"tag {k}": (have.get(k), v) for k, v in missing.items()},
                       note=note, calls=calls(missing), after=after)]
    if note:
        return [Change(f"{kind} tags", name, Action.UNCHANGED, note=note)]
    return []


def wanted_paths(ctx: Context) -> list[str]:
    paths = {"/"}
    for fn in ctx.config.lambda_.functions.values():
        parts = fn.path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            paths.add("/" + "/".join(parts[:i]))
    return sorted(paths, key=lambda p: (p.count("/"), p))


def apigateway_arn(ctx: Context, path: str) -> str:
    """An API Gateway resource's ARN, as TagResource takes it: no account, e.g. .../restapis/ID/stages/prod."""
    return ctx.arn("apigateway", path, account=False)


def tag_calls(ctx: Context, path: str, tags: dict[str, str]) -> list:
    """`path` may hold `{}` for the API id, known only once the API exists."""
    return [Call("apigateway", "tag_resource", {"resourceArn": Ref("api_id", apigateway_arn(ctx, path)), "tags": tags})]
