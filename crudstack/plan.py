"""Plain data shared by every step: what a step intends (Change) and the run's context.

A step's `plan()` makes only read calls and returns Changes. Each Change holds the API calls it will
make, as records (crudstack/calls.py), and the names of what it must wait for (`after`): the executor
(crudstack/executor.py) runs the records once those are done, and a dry run or the walkthrough prints
the very same records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from crudstack.aws import Aws
from crudstack.clock import fan
from crudstack.config import Config


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    KEEP = "kept"          # teardown leaves it in place on purpose (e.g. a table holding data)
    SKIP = "skipped"       # has our name but not our tag: never touched

    @property
    def mutates(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.DELETE)

    @property
    def past(self) -> str:
        return {"create": "created", "update": "updated", "delete": "deleted"}.get(self.value, self.value)


@dataclass(eq=False)
class Change:
    kind: str                                   # "table", "function", "alarm", ...
    name: str
    action: Action
    diffs: dict[str, tuple[Any, Any]] = field(default_factory=dict)   # field -> (old, new)
    calls: list = field(default_factory=list)   # the records it runs (crudstack.calls), in order
    note: str = ""
    # Dependencies by name: this change starts once every change of the run that `provides` one of
    # these names is done (a name no change provides is already there, e.g. a role left unchanged).
    after: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    def describe(self) -> str:
        symbol = {"create": "+", "update": "~", "unchanged": "=", "delete": "-", "kept": "!", "skipped": "!"}[self.action.value]
        text = f"{symbol} {self.kind} {self.name}"
        if self.diffs:
            text += " (" + ", ".join(f"{k}: {_short(old)} -> {_short(new)}" for k, (old, new) in self.diffs.items()) + ")"
        if self.note:
            text += f" [{self.note}]"
        return text


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Options:
    delete_data: bool = False
    backup: bool = False
    backup_dir: Path = Path("backups")


@dataclass
class Context:
    """What a run knows: settings, the AWS door, and what earlier steps found or made."""

    config: Config
    aws: Aws
    target: str
    options: Options = field(default_factory=Options)
    # Filled in as steps run; later steps read them.
    table_arn: str | None = None
    role_arn: str | None = None
    function_arns: dict[str, str] = field(default_factory=dict)     # config name -> ARN
    api_id: str | None = None
    resource_ids: dict[str, str] = field(default_factory=dict)      # path -> resource id
    deployment_id: str | None = None
    topic_arn: str | None = None
    alarm_names: list[str] = field(default_factory=list)
    log_groups: list[str] = field(default_factory=list)
    backup_location: str | None = None
    # Earlier steps' changes, planned and not made yet: a later step whose own reads cannot see them
    # (a deployment of routes not yet created, a role whose functions are about to go) looks here.
    pending: list[Change] = field(default_factory=list)
    # What records save for later ones (crudstack.calls.Ref): a new REST API's id, its resources' ids.
    variables: dict[str, Any] = field(default_factory=dict)
    # Every call the records made, as (service, operation, parameters): what the walkthrough showed, resolved.
    sent: list[tuple[str, str, dict]] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.aws.region

    @property
    def account_id(self) -> str:
        return self.aws.account_id

    @property
    def partition(self) -> str:
        return self.aws.partition

    def fan(self, fn: Callable[[Any], Any], items) -> list:
        """fn over items at once (read calls of a plan), answers in the items' order."""
        return fan(self.aws, fn, list(items))

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account_id if account else ''}:{resource}"
