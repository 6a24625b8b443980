"""The stack as data, for the exports: every name, setting and policy taken from config.yaml through the
same desired-state functions the steps use, so a template can never say something provision.py does not do.

The steps' functions build names and ARNs from `ctx.config.stack`, `ctx.partition`, `ctx.region`,
`ctx.account_id` and from resources made earlier (`ctx.role_arn`, `ctx.function_arns`). Here those are
*tokens*, `@@{stack}@@`, `@@{function_arn:CreateItemFunction}@@`, ..., which each writer turns into its own
syntax: a CloudFormation parameter, pseudo-parameter or attribute (`${StackPrefix}`, `${AWS::Partition}`,
`${CreateItemFunction.Arn}`), or a Terraform variable, data source or attribute (`${var.stack_prefix}`,
`${data.aws_partition.current.partition}`, `${aws_lambda_function.create_item_function.arn}`).
No AWS call is made.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crudstack.config import Config
from crudstack.packaging import Package, build_package
from crudstack.plan import Context
from crudstack.steps.authorization import method_authorization
from crudstack.steps.usage_plan import api_key_description, usage_plan_description, wanted_plan
from crudstack.steps.api import integration_uri, permission_id, source_arn
from crudstack.steps.base import wanted_paths
from crudstack.steps.cors import (GATEWAY_RESPONSE_TEMPLATES, GATEWAY_RESPONSE_TYPES, MOCK_REQUEST_TEMPLATES,
                                  gateway_response_headers, gateway_response_parameters, wanted_preflights)
from crudstack.steps.functions import desired_settings
from crudstack.steps.monitoring import desired_alarms, log_group_name
from crudstack.steps.role import TRUST_POLICY, TUTORIAL_MANAGED_POLICY_NAMES, inline_policy, inline_policy_name, managed_policy_arn

TOKEN = re.compile(r"@@\{([a-z_]+)(?::([^}]*))?\}@@")
# Where the function zips go inside the export folder; templates name them relative to their own folder.
BUILD_DIR = "build"


def token(kind: str, name: str | None = None) -> str:
    return f"@@{{{kind}{':' + name if name else ''}}}@@"


STACK, PARTITION, REGION, ACCOUNT = token("stack"), token("partition"), token("region"), token("account")
API_ID, ROLE_ARN, TOPIC_ARN = token("api_id"), token("role_arn"), token("topic_arn")


def function_arn(base: str) -> str:
    return token("function_arn", base)


def logical_id(*parts: str) -> str:
    """A CloudFormation logical id (letters and digits only) from names such as 'items', '{id}', 'Get-Items_x'."""
    words = re.split(r"[^A-Za-z0-9]+", " ".join(parts))
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def snake(name: str) -> str:
    """A Terraform resource name from a logical id: ItemsIdGetMethod -> items_id_get_method."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def path_id(path: str) -> str:
    return logical_id(*path.strip("/").split("/")) or "Root"


class _SymbolicAws:
    """Stands in for crudstack.aws.Aws in a Context: what the steps read from it, as tokens."""

    region, account_id, partition = REGION, ACCOUNT, PARTITION


@dataclass(frozen=True)
class Function:
    base: str                  # its key in config.yaml, e.g. CreateItemFunction
    logical: str
    name: str                  # with the stack token
    settings: dict             # desired_settings: Runtime, Handler, MemorySize, Timeout, Role, Environment
    description: str
    method: str
    path: str
    package: Package
    zip_path: str              # relative to the export folder, e.g. build/CreateItemFunction.zip
    log_group: str
    log_group_logical: str
    integration_uri: str
    source_arn: str
    permission_logical: str
    reserved_concurrency: int | None = None   # PutFunctionConcurrency's value; None: unreserved


@dataclass(frozen=True)
class ApiResource:
    path: str
    part: str
    parent: str                # "/" for a child of the root
    logical: str


@dataclass(frozen=True)
class Method:
    method: str
    path: str
    function: str | None       # base of the function it proxies to; None for a CORS preflight (MOCK)
    logical: str
    preflight_headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Alarm:
    name: str                  # with the stack token
    logical: str
    spec: dict                 # desired_alarms' keyword arguments of put_metric_alarm


@dataclass(frozen=True)
class Access:
    """Who may call the API (api.auth), as steps 4 and 5 set it (crudstack/steps/authorization.py, usage_plan.py)."""

    auth: str                                  # none | api_key | iam
    authorization: dict                        # put_method's authorizationType and apiKeyRequired, for every route
    gateway_responses: dict[str, dict]         # DEFAULT_4XX / DEFAULT_5XX -> {"parameters": ..., "templates": ...}
    throttle_rate: float                       # the stage's default method throttling
    throttle_burst: int
    usage_plan: dict | None                    # api_key only: name, description, throttle, quota (absent: none)
    api_key: dict | None                       # api_key only: name, description
    usage_plan_logical: str
    api_key_logical: str


@dataclass(frozen=True)
class StackModel:
    config: Config             # the user's, unchanged (its stack is the parameter's default)
    tags: dict[str, str]       # every tag, crudstack-stack being the stack token
    table_name: str
    table_logical: str
    partition_key: str
    billing_mode: str
    role_name: str
    role_logical: str
    role_description: str
    trust_policy: dict
    policy_name: str
    policy: dict
    managed_policy_arns: tuple[str, ...]
    functions: tuple[Function, ...]
    api_name: str
    api_logical: str
    api_description: str
    resources: tuple[ApiResource, ...]
    methods: tuple[Method, ...]
    mock_request_templates: dict[str, str]
    permission_statement_id: str
    stage: str
    deployment_hash: str       # changes whenever a route, an integration or a preflight does
    topic_name: str
    topic_logical: str
    alert_email: str | None
    retention_days: int
    alarms: tuple[Alarm, ...]
    access: Access

    def function(self, base: str) -> Function:
        return next(f for f in self.functions if f.base == base)

    def resource(self, path: str) -> ApiResource:
        return next(r for r in self.resources if r.path == path)


def symbolic_context(config: Config) -> Context:
    """A Context the steps' desired-state functions can read, every AWS-chosen value a token."""
    symbolic = config.model_copy(update={"stack": STACK})  # names and tags follow the stack parameter
    ctx = Context(config=symbolic, aws=_SymbolicAws(), target="export")  # type: ignore[arg-type]
    ctx.role_arn = ROLE_ARN
    ctx.function_arns = {base: function_arn(base) for base in config.lambda_.functions}
    ctx.api_id = API_ID
    ctx.topic_arn = TOPIC_ARN
    return ctx


def build_model(config: Config) -> StackModel:
    ctx = symbolic_context(config)
    cfg = ctx.config
    functions = []
    for base, fn in cfg.lambda_.functions.items():
        name = cfg.function_name(base)
        functions.append(Function(
            base=base, logical=logical_id(base), name=name, settings=desired_settings(ctx, fn),
            # As step 3 describes a function it creates.
            description=f"{fn.route} of the {cfg.stack} items API (managed by crudstack)",
            method=fn.method, path=fn.path, package=build_package(cfg.code_dir, fn.module),
            zip_path=f"{BUILD_DIR}/{base}.zip", log_group=log_group_name(name), log_group_logical=logical_id(base, "LogGroup"),
            integration_uri=integration_uri(ctx, ctx.function_arns[base]),
            source_arn=source_arn(ctx, ctx.api_id, fn.method, fn.path), permission_logical=logical_id(base, "Permission"),
            reserved_concurrency=cfg.reserved_concurrency(fn)))
    resources = []
    for path in wanted_paths(ctx):
        if path == "/":
            continue
        parent, _, part = path.rpartition("/")
        resources.append(ApiResource(path, part, parent or "/", path_id(path) + "Resource"))
    methods = [Method(f.method, f.path, f.base, logical_id(path_id(f.path), f.method.lower(), "Method"))
               for f in sorted(functions, key=lambda f: (f.path, f.method))]
    methods += [Method("OPTIONS", path, None, logical_id(path_id(path), "Options", "Method"), headers)
                for path, headers in wanted_preflights(ctx).items()]
    alarms = []
    for name, spec in desired_alarms(ctx, ctx.topic_arn).items():
        alarms.append(Alarm(name, logical_id(name.removeprefix(f"{cfg.stack}-"), "Alarm"), spec))
    access = _access(ctx)
    shape = [[m.method, m.path, m.function and functions[[f.base for f in functions].index(m.function)].integration_uri,
              m.preflight_headers] for m in methods]
    shape.append([access.authorization, access.gateway_responses])   # part of the deployed snapshot too (steps/deploy.py)
    model = StackModel(
        config=config, tags=cfg.all_tags,
        table_name=cfg.table_name, table_logical=logical_id(cfg.table.name), partition_key=cfg.table.partition_key,
        billing_mode=cfg.table.billing_mode,
        role_name=cfg.role_name, role_logical=logical_id(cfg.role.name),
        # As step 2 describes the role it creates.
        role_description=f"Lets the {cfg.stack} items API functions use {cfg.table_name} (managed by crudstack)",
        trust_policy=TRUST_POLICY, policy_name=inline_policy_name(ctx), policy=inline_policy(ctx),
        managed_policy_arns=tuple(sorted(managed_policy_arn(ctx, n) for n in TUTORIAL_MANAGED_POLICY_NAMES))
        if cfg.role.tutorial_managed_policies else (),
        functions=tuple(functions),
        api_name=cfg.api_name, api_logical=logical_id(cfg.api.name),
        # As step 4 describes the REST API it creates.
        api_description=f"Items CRUD API of stack {cfg.stack} (managed by crudstack)",
        resources=tuple(resources), methods=tuple(methods), mock_request_templates=dict(MOCK_REQUEST_TEMPLATES),
        permission_statement_id=permission_id(ctx), stage=cfg.api.stage,
        deployment_hash=hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:10],
        topic_name=cfg.topic_name, topic_logical=logical_id(cfg.monitoring.alerts_topic),
        alert_email=cfg.monitoring.alert_email, retention_days=cfg.monitoring.log_retention_days, alarms=tuple(alarms),
        access=access)
    _check_unique_ids(model)
    return model


def _access(ctx: Context) -> Access:
    cfg = ctx.config
    parameters = gateway_response_parameters(gateway_response_headers(ctx))
    plan = None
    if cfg.api.auth == "api_key":
        plan = {"name": cfg.usage_plan_name, "description": usage_plan_description(cfg), **wanted_plan(ctx)}
    return Access(
        auth=cfg.api.auth, authorization=method_authorization(cfg),
        gateway_responses={kind: {"parameters": parameters, "templates": dict(GATEWAY_RESPONSE_TEMPLATES)} for kind in GATEWAY_RESPONSE_TYPES},
        throttle_rate=float(cfg.api.throttle.rate_per_s), throttle_burst=cfg.api.throttle.burst, usage_plan=plan,
        api_key={"name": cfg.api_key_name, "description": api_key_description(cfg)} if plan else None,
        usage_plan_logical=logical_id(cfg.api.name, "UsagePlan"), api_key_logical=logical_id(cfg.api.name, "Key"))


def _check_unique_ids(model: StackModel) -> None:
    """Two config names that differ only in '-' or '_' would share a logical id: say so rather than write one over the other."""
    ids = ([model.table_logical, model.role_logical, model.api_logical, model.topic_logical]
           + [x for f in model.functions for x in (f.logical, f.log_group_logical, f.permission_logical)]
           + [r.logical for r in model.resources] + [m.logical for m in model.methods] + [a.logical for a in model.alarms])
    seen: dict[str, int] = {}
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
    clashes = sorted(i for i, n in seen.items() if n > 1)
    if clashes:
        from crudstack.errors import ExportError

        raise ExportError(f"two resources of config.yaml would get the same template name ({', '.join(clashes)}): "
                          "names that differ only in '-' or '_' cannot both be exported; rename one in config.yaml")


def write_packages(model: StackModel, folder: Path) -> list[Path]:
    """The functions' zips, built as step 3 builds them (same bytes, same CodeSha256)."""
    written = []
    for fn in model.functions:
        path = folder / fn.zip_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fn.package.zip_bytes)
        written.append(path)
    return written


def substitute(value: Any, replace) -> Any:
    """Apply replace(text) to every string inside a JSON-like value."""
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict):
        return {k: substitute(v, replace) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, replace) for v in value]
    return value
