"""A model of AWS's eventual consistency, on top of moto (which has none: see shared/MOTO-NOTES.md).

What it makes AWS do, for `delays` seconds of a `SimClock` after each change:

    role        a new role cannot be assumed by Lambda yet: create_function / update_function_configuration
                naming it answer InvalidParameterValueException "The role defined for the function cannot
                be assumed by Lambda."
    table       a new table is CREATING (describe_table); update_table / delete_table answer
                ResourceInUseException
    function    a new function is Pending, an updated one's LastUpdateStatus InProgress (get_function,
                get_function_configuration); updates and permission changes answer ResourceConflictException
    resource    a new API Gateway resource is not listed by get_resources yet; and, as AWS (not moto) does,
                a second create_resource of the same path is refused with ConflictException

It is a set of botocore hooks on one `Aws` (`attach`). Time is simulated: the `SimClock` is also
the Aws's clock and sleep, so a 30 s window costs no real time, and the waits' overshoot can be
measured exactly: `SimClock.now` at the end of a run against `critical_path()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crudstack.chaos import client_error

ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."


class SimClock:
    """Simulated seconds: sleeping moves the clock on at once. Use as Aws(clock=c, sleep=c.sleep)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class Delays:
    role: float = 0.0        # IAM propagation to Lambda
    table: float = 0.0       # CREATING
    function: float = 0.0    # Pending after create, InProgress after an update
    resource: float = 0.0    # not yet listed by get_resources


@dataclass
class ConsistencyModel:
    clock: SimClock
    delays: Delays
    roles: dict[str, float] = field(default_factory=dict)          # role ARN -> assumable from
    tables: dict[str, float] = field(default_factory=dict)         # name -> ACTIVE from
    functions: dict[str, tuple[str, float]] = field(default_factory=dict)   # name -> (created|updated, settled from)
    resources: dict[str, float] = field(default_factory=dict)      # resource id -> listed from
    paths: dict[tuple[str, str, str], str] = field(default_factory=dict)    # (api, parent, part) -> resource id
    refused: list[str] = field(default_factory=list)               # every refusal made, e.g. "CreateFunction:role"
    hidden: list[str] = field(default_factory=list)                # every answer made stale, e.g. "DescribeTable:CREATING"

    def attach(self, aws) -> "ConsistencyModel":
        aws.register("before-parameter-build", self._remember)
        aws.register("before-call", self._before)
        aws.register("after-call", self._after)
        return self

    def critical_path(self) -> float:
        """The least time the tutorial's order can take under this model: step 1 ends once the table is
        ACTIVE; the functions need the role assumable and end Active; step 5 needs the resources listed."""
        d = self.delays
        return d.table + d.role + d.function + d.resource

    # -- hooks ------------------------------------------------------------------------------------------
    def _remember(self, params, context, **_):
        context["model_params"] = dict(params)

    def _busy(self, name: str) -> tuple[str, float] | None:
        entry = self.functions.get(name.rsplit(":", 1)[-1] if name.startswith("arn:") else name)
        return entry if entry and self.clock.now < entry[1] else None

    def _before(self, model, context, **_):
        op, params, now = model.name, context.get("model_params") or {}, self.clock.now
        if op in ("CreateFunction", "UpdateFunctionConfiguration") and self.roles.get(params.get("Role", ""), 0) > now:
            self.refused.append(f"{op}:role")
            return client_error("InvalidParameterValueException", 400, ROLE_NOT_ASSUMABLE)
        if op in ("UpdateTable", "DeleteTable") and self.tables.get(params.get("TableName", ""), 0) > now:
            self.refused.append(f"{op}:table")
            return client_error("ResourceInUseException", 400,
                                f"Attempt to change a resource which is still in use: Table is being created: {params['TableName']}")
        if op in ("UpdateFunctionCode", "UpdateFunctionConfiguration", "AddPermission", "RemovePermission"):
            busy = self._busy(params.get("FunctionName", ""))
            if busy:
                self.refused.append(f"{op}:function")
                message = ("The operation cannot be performed at this time. The function is currently in the following state: Pending"
                           if busy[0] == "created" else
                           f"The operation cannot be performed at this time. An update is in progress for resource: {params['FunctionName']}")
                return client_error("ResourceConflictException", 409, message)
        if op == "CreateResource":
            key = (params.get("restApiId"), params.get("parentId"), params.get("pathPart"))
            if key in self.paths:
                self.refused.append(f"{op}:duplicate")
                return client_error("ConflictException", 409, f"Another resource with the same parent already has this name: {key[2]}")
        return None

    def _after(self, model, http_response, parsed, context, **_):
        if getattr(http_response, "status_code", 500) >= 300:
            return
        op, params, now, d = model.name, context.get("model_params") or {}, self.clock.now, self.delays
        if op == "CreateRole":
            self.roles[parsed["Role"]["Arn"]] = now + d.role
        elif op == "CreateTable":
            self.tables[params["TableName"]] = now + d.table
            parsed["TableDescription"]["TableStatus"] = "CREATING"
        elif op == "DescribeTable" and self.tables.get(params["TableName"], 0) > now:
            parsed["Table"]["TableStatus"] = "CREATING"
            self.hidden.append(f"{op}:CREATING")
        elif op == "CreateFunction":
            self.functions[params["FunctionName"]] = ("created", now + d.function)
            self._pending(parsed, "created")
        elif op in ("UpdateFunctionCode", "UpdateFunctionConfiguration"):
            self.functions[params["FunctionName"]] = ("updated", now + d.function)
            self._pending(parsed, "updated")
        elif op in ("GetFunction", "GetFunctionConfiguration"):
            busy = self._busy(params["FunctionName"])
            if busy:
                self._pending(parsed["Configuration"] if op == "GetFunction" else parsed, busy[0])
                self.hidden.append(f"{op}:{busy[0]}")
        elif op == "CreateResource":
            self.resources[parsed["id"]] = now + d.resource
            self.paths[(params["restApiId"], params["parentId"], params["pathPart"])] = parsed["id"]
        elif op == "GetResources":
            listed = [r for r in parsed.get("items", []) if self.resources.get(r["id"], 0) <= now]
            if len(listed) != len(parsed.get("items", [])):
                self.hidden.append(f"{op}:unlisted")
            parsed["items"] = listed
        elif op == "DeleteRestApi":
            self.paths = {k: v for k, v in self.paths.items() if k[0] != params["restApiId"]}

    @staticmethod
    def _pending(configuration: dict, how: str) -> None:
        if how == "created":
            configuration.update(State="Pending", StateReason="The function is being created.", StateReasonCode="Creating")
            configuration.pop("LastUpdateStatus", None)
        else:
            configuration.update(State="Active", LastUpdateStatus="InProgress",
                                 LastUpdateStatusReason="The function is being updated.", LastUpdateStatusReasonCode="InProgress")
