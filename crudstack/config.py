"""config.yaml -> typed, immutable settings, validated before any AWS call.

Every problem is reported with the key path, what was found and what is expected,
all at once, so a user fixes the file in one go.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

import yaml
from typing import get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from crudstack.errors import ConfigError
from crudstack.packaging import escaping_links

ROOT = Path(__file__).resolve().parent.parent



@dataclass(frozen=True)
class RuntimeDates:
    """One row of Lambda's runtime tables: when it is deprecated, when Lambda stops creating functions with it,
    and when it stops updating them."""

    deprecated: date
    block_create: date
    block_update: date


# Lambda's Python runtimes (our handlers are Python), from "Lambda runtimes", tables "Supported runtimes" and
# "Deprecated runtimes" (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html), whose Python rows
# the Python chapter repeats ("Building Lambda functions with Python",
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html): deprecation date, block function create,
# block function update. python3.14, 3.13, 3.12, 3.11 and 3.10 are read from that table as it stands (3.11:
# Jun 30 2027 / Jul 31 2027 / Aug 31 2027; 3.10: Oct 31 2026 / Nov 30 2026 / Jan 15 2027). A deprecated
# runtime still works (a warning); a blocked one cannot create functions (refused before any AWS call).
PYTHON_RUNTIMES: dict[str, RuntimeDates] = {
    "python3.14": RuntimeDates(date(2029, 6, 30), date(2029, 7, 31), date(2029, 8, 31)),
    "python3.13": RuntimeDates(date(2029, 6, 30), date(2029, 7, 31), date(2029, 8, 31)),
    "python3.12": RuntimeDates(date(2028, 10, 31), date(2028, 11, 30), date(2029, 1, 10)),
    "python3.11": RuntimeDates(date(2027, 6, 30), date(2027, 7, 31), date(2027, 8, 31)),
    "python3.10": RuntimeDates(date(2026, 10, 31), date(2026, 11, 30), date(2027, 1, 15)),
    # NOT read from AWS's page: python3.9 has left the supported table, and its "Deprecated runtimes" row could
    # not be reached here. Its deprecation on 2025-12-15 is the date tflint-ruleset-aws took from that page
    # (rules/aws_lambda_function_deprecated_runtime.go, PR #969); the two block dates are unverified and may
    # have moved since (check the page before relying on them).
    "python3.9": RuntimeDates(date(2025, 12, 15), date(2026, 8, 31), date(2026, 9, 30)),
    # AWS's announcement of python3.8's end of support: deprecated Oct 14 2024, no create from Feb 28 2025,
    # no update from Mar 31 2025.
    "python3.8": RuntimeDates(date(2024, 10, 14), date(2025, 2, 28), date(2025, 3, 31)),
}
# The key the handlers in lambdas/ read and write (Key={"id": ...}, the API's /items/{id}).
HANDLERS_PARTITION_KEY = "id"


def today() -> date:
    """Today in UTC, the calendar Lambda's runtime dates are given in (tests replace it)."""
    return datetime.now(timezone.utc).date()
# The only values CloudWatch Logs accepts for a retention policy.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Alarm periods under a minute: CloudWatch allows them for high-resolution metrics only, and
# AWS/Lambda and AWS/ApiGateway publish one datapoint a minute, so they are for the local AWS.
SHORT_ALARM_PERIODS = (10, 30)
MANAGED_BY = "crudstack"
# Keys Lambda sets itself and refuses in a function's configuration: "Defined runtime environment
# variables" in the Lambda developer guide,
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
LAMBDA_RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ",
})
# Lambda's rule for a key, as its API states it (Environment.Variables keys, pattern
# [a-zA-Z]([a-zA-Z0-9_])+ in botocore's lambda service model): a letter, then at least one more
# letter, digit or underscore.
_LAMBDA_VARIABLE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]+$")
# "Environment variables: 4 KB, for all environment variables associated with the function, in
# aggregate" (Lambda quotas, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
# Lambda measures the variables as one compact JSON object ("exceeded the 4KB limit. String measured:
# {"KEY":"value",...}", quoted in github-aws-runners/terraform-aws-github-runner#3594), keys included.
LAMBDA_ENVIRONMENT_MAX_BYTES = 4096
# Reserved concurrency: "Valid Range: Minimum value of 0" (Lambda API Reference, Concurrency,
# https://docs.aws.amazon.com/lambda/latest/dg/API_Concurrency.html); 0 throttles every request.
# The top is the account's own limit less the 100 Lambda keeps unreserved, which only AWS knows: a value
# over it is AWS's InvalidParameterValueException at run time.
def _reserved_concurrency(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ValueError("a number of concurrent executions, 0 or more (0 throttles every request, Lambda's minimum), "
                         "or null for none reserved")
    return value


ReservedConcurrency = Annotated[int | None, AfterValidator(_reserved_concurrency)]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PATH_PART = re.compile(r"^(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9._-]+)$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_DOT_SEGMENTS = (".", "..")
_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:\d{1,5})?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Name = Annotated[str, Field(min_length=1, max_length=40, pattern=_NAME.pattern)]
_PATTERN_NAME_HINT = "a name of letters, digits, '-' and '_', starting with a letter"


class LocalConfig(_Strict):
    port: int = Field(4566, ge=1024, le=65535)
    state_dir: str = ".local-aws"
    lambda_concurrency: int = Field(10, ge=1, le=100)
    # moto: the local AWS answers at once, as moto does. realistic: provision and teardown meet a model of a real
    # account (crudstack/realistic.py: tables CREATING and DELETING, IAM propagation, functions Pending, tags that
    # lag, API Gateway's quotas), its delays multiplied by behaviour_scale (1: as on AWS; 0.1: ten times faster).
    behaviour: Literal["moto", "realistic"] = "moto"
    behaviour_scale: float = Field(1.0, gt=0, le=10)


class RetryConfig(_Strict):
    deadline_s: float = Field(180, gt=0, le=3600)
    # An optional cap on attempts per call; null: the deadline alone decides when to stop.
    max_attempts: int | None = Field(None, ge=1, le=100)


class TableConfig(_Strict):
    name: Name = "ItemsTable"
    partition_key: Annotated[str, Field(min_length=1, max_length=255)] = "id"
    billing_mode: Literal["PAY_PER_REQUEST"] = "PAY_PER_REQUEST"


class RoleConfig(_Strict):
    name: Name = "LambdaDynamoDBRole"
    # The console tutorial attaches these broad managed policies; we default to a
    # least-privilege inline policy instead and warn when they are asked for.
    tutorial_managed_policies: bool = False


class Route(_Strict):
    method: str
    path: str


class FunctionConfig(_Strict):
    handler: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")]
    route: str
    memory_mb: int | None = Field(None, ge=128, le=10240)
    timeout_s: int | None = Field(None, ge=1, le=900)
    environment: dict[str, str] = Field(default_factory=dict)
    # null: lambda.reserved_concurrency applies (and when that is null too, the function is unreserved)
    reserved_concurrency: ReservedConcurrency = None

    @field_validator("route")
    @classmethod
    def _route_is_method_and_path(cls, value: str) -> str:
        parts = value.split()
        if len(parts) != 2 or parts[0] not in HTTP_METHODS:
            raise ValueError(f"a route like 'GET /items/{{id}}' with a method from {', '.join(HTTP_METHODS)}")
        path = parts[1]
        if not path.startswith("/") or path == "/" or not all(_PATH_PART.match(p) for p in path[1:].split("/")):
            raise ValueError("a path like /items or /items/{id}: literal parts or {param} parts")
        dots = [p for p in path[1:].split("/") if p in _DOT_SEGMENTS]
        if dots:
            # Clients remove dot segments before they send a URL (RFC 3986, section 5.2.4, "Remove Dot
            # Segments": /items/../admin is sent as /admin), so such a route could never be called as written.
            raise ValueError(f"a path without '.' or '..' segments (found {dots[0]!r}; clients resolve them away before "
                             f"sending, so /items/../admin would be called as /admin): write the path as it is called")
        return value

    @property
    def method(self) -> str:
        return self.route.split()[0]

    @property
    def path(self) -> str:
        return self.route.split()[1]

    @property
    def module(self) -> str:
        return self.handler.split(".")[0]


class LambdaConfig(_Strict):
    code_dir: str = "lambdas"
    runtime: str = "python3.12"
    memory_mb: int = Field(128, ge=128, le=10240)
    timeout_s: int = Field(10, ge=1, le=900)
    reserved_concurrency: ReservedConcurrency = None   # every function's, unless it sets its own
    functions: dict[Name, FunctionConfig]

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in PYTHON_RUNTIMES:
            usable = [name for name, dates in PYTHON_RUNTIMES.items() if today() < dates.block_create]
            raise ValueError(f"one of Lambda's Python runtimes that still create functions: {', '.join(usable)}")
        return value

    @field_validator("functions")
    @classmethod
    def _routes_are_unique(cls, value: dict[str, FunctionConfig]) -> dict[str, FunctionConfig]:
        if not value:
            raise ValueError("at least one function")
        seen: dict[str, str] = {}
        for name, fn in value.items():
            if fn.route in seen:
                raise ValueError(f"one function per route, but {seen[fn.route]} and {name} both serve {fn.route}")
            seen[fn.route] = name
        return value


class CorsConfig(_Strict):
    # "*" (any page may call the API) or the exact origins of the pages that may.
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])
    max_age_s: int = Field(600, ge=0, le=86400)  # how long a browser may cache a preflight answer

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one origin, or ['*'] to allow any page")
        if "*" in value and len(value) > 1:
            raise ValueError("'*' alone (it already allows every origin), or a list of origins without it")
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(f"origins as browsers send them, like https://app.example.com or http://localhost:3000 "
                                 f"(lower-case scheme and host, optional port, no path or trailing slash); {origin!r} is not one")
        if len(set(value)) != len(value):
            raise ValueError("each origin once")
        return value


# The account's throttle quota per Region: 10,000 requests per second, a burst of 5,000 ("Amazon API Gateway
# quotas", https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html): a stage or usage plan
# limit above it never applies, so a larger number in config.yaml is a typo, not a wish.
ACCOUNT_RATE_PER_S, ACCOUNT_BURST = 10000, 5000


class ThrottleConfig(_Strict):
    """A token bucket as API Gateway applies it: `rate_per_s` requests a second on average, `burst` at once
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html)."""

    rate_per_s: float = Field(100, gt=0, le=ACCOUNT_RATE_PER_S)
    burst: int = Field(200, ge=1, le=ACCOUNT_BURST)


class UsagePlanConfig(ThrottleConfig):
    """The usage plan of auth: api_key (per key: its throttle and its quota of requests per period)."""

    rate_per_s: float = Field(10, gt=0, le=ACCOUNT_RATE_PER_S)
    burst: int = Field(20, ge=1, le=ACCOUNT_BURST)
    quota: int | None = Field(10000, ge=1)      # requests per quota_period; None: no quota
    quota_period: Literal["DAY", "WEEK", "MONTH"] = "DAY"   # QuotaSettings.period's values (API Gateway API Reference)


class ApiConfig(_Strict):
    name: Name = "ItemsApi"
    stage: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$")] = "prod"
    cors: CorsConfig = CorsConfig()
    # Who may call the API: none (the tutorial's open API), api_key (an x-api-key header, a usage plan), iam (SigV4).
    auth: Literal["none", "api_key", "iam"] = "none"
    throttle: ThrottleConfig = ThrottleConfig()
    usage_plan: UsagePlanConfig = UsagePlanConfig()


class AlarmConfig(_Strict):
    period_s: int = Field(60, ge=10, le=86400)
    evaluation_periods: int = Field(1, ge=1, le=100)
    function_errors: int = Field(1, ge=1)
    function_throttles: int = Field(1, ge=1)
    function_duration_p99_ms: int = Field(3000, ge=1)
    api_5xx_errors: int = Field(1, ge=1)
    api_latency_p99_ms: int = Field(3000, ge=1)

    @field_validator("period_s")
    @classmethod
    def _cloudwatch_period(cls, value: int) -> int:
        if value not in SHORT_ALARM_PERIODS and value % 60:
            raise ValueError("10, 30 or a multiple of 60 seconds (CloudWatch's rule)")
        return value


class MonitoringConfig(_Strict):
    log_retention_days: int = 14
    alerts_topic: Name = "ItemsApiAlerts"
    alert_email: str | None = None
    alarms: AlarmConfig = AlarmConfig()

    @field_validator("log_retention_days")
    @classmethod
    def _known_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"one of CloudWatch Logs' retention values: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return value

    @field_validator("alert_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("an e-mail address like ops@example.com, or null for none")
        return value


class Config(_Strict):
    stack: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,19}$")]
    # prefixed: every AWS name is "<stack>-<name>", so stacks share an account. tutorial: the console tutorial's
    # own names, no prefix (ItemsTable, LambdaDynamoDBRole, CreateItemFunction, ...): the stack `--adopt` takes
    # over (README, "Adopt the stack you built by hand in the console"); one such stack per account and region.
    names: Literal["prefixed", "tutorial"] = "prefixed"
    target: Literal["local", "aws"] = "local"
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] = "us-east-1"
    tags: dict[str, str] = Field(default_factory=dict)
    local: LocalConfig = LocalConfig()
    retry: RetryConfig = RetryConfig()
    table: TableConfig = TableConfig()
    role: RoleConfig = RoleConfig()
    lambda_: LambdaConfig = Field(alias="lambda")
    api: ApiConfig = ApiConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @field_validator("tags")
    @classmethod
    def _user_tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith("aws:") or key in ("managed-by", "crudstack-stack"):
                raise ValueError(f"tag key {key!r} is reserved (aws:* and our own managed-by / crudstack-stack)")
        return value

    # Names as they appear in AWS: every one prefixed by the stack name, unless names: tutorial.
    @property
    def name_prefix(self) -> str:
        return "" if self.names == "tutorial" else f"{self.stack}-"

    def name(self, base: str) -> str:
        return f"{self.name_prefix}{base}"

    @property
    def table_name(self) -> str:
        return self.name(self.table.name)

    @property
    def role_name(self) -> str:
        return self.name(self.role.name)

    @property
    def api_name(self) -> str:
        return self.name(self.api.name)

    @property
    def usage_plan_name(self) -> str:
        return self.name(f"{self.api.name}-plan")

    @property
    def api_key_name(self) -> str:
        return self.name(f"{self.api.name}-key")

    @property
    def topic_name(self) -> str:
        return self.name(self.monitoring.alerts_topic)

    def function_name(self, base: str) -> str:
        return self.name(base)

    @property
    def code_dir(self) -> Path:
        return (ROOT / self.lambda_.code_dir) if not Path(self.lambda_.code_dir).is_absolute() else Path(self.lambda_.code_dir)

    @property
    def state_dir(self) -> Path:
        path = Path(self.local.state_dir)
        return path if path.is_absolute() else ROOT / path

    @property
    def ownership_tags(self) -> dict[str, str]:
        return {"managed-by": MANAGED_BY, "crudstack-stack": self.stack}

    @property
    def all_tags(self) -> dict[str, str]:
        return {**self.tags, **self.ownership_tags}

    def own_variables(self) -> dict[str, str]:
        """What the handlers in lambdas/ read from their environment, set by us in every function:
        TABLE_NAME, and ALLOWED_ORIGINS (api.cors.allowed_origins) for the CORS headers of every answer."""
        return {"TABLE_NAME": self.table_name, "ALLOWED_ORIGINS": ",".join(self.api.cors.allowed_origins)}

    def reserved_concurrency(self, fn: FunctionConfig) -> int | None:
        """The function's reserved concurrency (PutFunctionConcurrency), or None for unreserved."""
        return fn.reserved_concurrency if fn.reserved_concurrency is not None else self.lambda_.reserved_concurrency

    def function_environment(self, fn: FunctionConfig) -> dict[str, str]:
        """Every variable a function gets: ours, then its own from config.yaml."""
        return {**self.own_variables(), **fn.environment}


def package_problems(config: Config) -> list[str]:
    """Links in the functions' packages that lead outside lambda.code_dir (crudstack/packaging.py), each once."""
    found: list[str] = []
    for name, fn in config.lambda_.functions.items():
        found += [f"lambda.functions.{name}: {link}" if link.startswith(f"{fn.module}.py ") else f"lambda.code_dir: {link}"
                  for link in escaping_links(config.code_dir, fn.module)]
    return list(dict.fromkeys(found))


def environment_problems(config: Config) -> list[str]:
    """Variables Lambda would refuse, or that would replace our own: found before any AWS call."""
    problems = []
    own = config.own_variables()
    for base, fn in config.lambda_.functions.items():
        where = f"lambda.functions.{base}.environment"
        for key in fn.environment:
            if key in LAMBDA_RESERVED_VARIABLES:
                problems.append(f"{where}.{key}: found {key!r}, a key Lambda reserves (it sets {key} in every function itself and "
                                f"refuses it in a configuration); remove it, or use a name of your own such as APP_{key.lstrip('_')}")
            elif key in own:
                problems.append(f"{where}.{key}: found {key!r}, a key crudstack sets itself (the handlers read TABLE_NAME for the "
                                f"table and ALLOWED_ORIGINS for CORS); remove it and set table.name or api.cors.allowed_origins instead, "
                                f"or use another name")
            elif not _LAMBDA_VARIABLE.match(key):
                problems.append(f"{where}.{key}: found {key!r}, expected a key of letters, digits and '_' that starts with a "
                                f"letter and is at least 2 characters long (Lambda's rule), e.g. PAGE_SIZE")
        measured = len(json.dumps(config.function_environment(fn), separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if measured > LAMBDA_ENVIRONMENT_MAX_BYTES:
            problems.append(f"{where}: found {measured} bytes of environment variables (measured as Lambda does, as JSON, with our "
                            f"TABLE_NAME and ALLOWED_ORIGINS), expected at most {LAMBDA_ENVIRONMENT_MAX_BYTES} (Lambda's 4 KB limit); "
                            f"shorten or remove values, or keep large settings elsewhere (e.g. SSM Parameter Store)")
    return problems


def check_target(config: Config, target: str, source: str = "config.yaml") -> None:
    """What is valid only for one target, or only for a provision (a teardown of an old stack needs neither);
    called once --target is known, before any AWS call. Every problem at once; warnings go to stderr."""
    problems = deploy_problems(config)
    period = config.monitoring.alarms.period_s
    if target == "aws" and period in SHORT_ALARM_PERIODS:
        problems.append(
            f"monitoring.alarms.period_s: found {period} (int), expected a multiple of 60 seconds with target aws: "
            f"AWS/Lambda and AWS/ApiGateway publish one datapoint a minute, so a {period} s alarm would never see "
            f"full data; {' and '.join(map(str, SHORT_ALARM_PERIODS))} s periods are for demos with target: local")
    if problems:
        raise ConfigError(problems, source)
    for warning in runtime_warnings(config):
        print(f"warning: {warning}", file=sys.stderr, flush=True)


def _newest_runtime() -> str:
    # python3.14 and python3.13 share their dates on Lambda's page: the newer version wins the tie.
    return max(PYTHON_RUNTIMES, key=lambda name: (PYTHON_RUNTIMES[name].block_create,
                                                  tuple(int(part) for part in name.removeprefix("python").split("."))))


def deploy_problems(config: Config, on: date | None = None) -> list[str]:
    """What a provision (or an export) of this config cannot do: a runtime Lambda has blocked, a partition key
    the handlers do not read."""
    on = on or today()
    problems = []
    runtime, dates = config.lambda_.runtime, PYTHON_RUNTIMES[config.lambda_.runtime]
    if on >= dates.block_create:
        problems.append(f"lambda.runtime: found {runtime!r}, which Lambda has blocked: it creates no function with it since "
                        f"{dates.block_create:%Y-%m-%d} and updates none since {dates.block_update:%Y-%m-%d} (Lambda runtimes, "
                        f"https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html); set lambda.runtime to "
                        f"{_newest_runtime()}")
    key = config.table.partition_key
    if key != HANDLERS_PARTITION_KEY:
        problems.append(f"table.partition_key: found {key!r}, expected {HANDLERS_PARTITION_KEY!r}: the handlers in lambdas/ "
                        f"read and write each item by its {HANDLERS_PARTITION_KEY!r} attribute (the API's /items/{{id}}), so a "
                        f"table keyed by {key!r} would refuse every write; remove table.partition_key or set it to "
                        f"{HANDLERS_PARTITION_KEY!r}")
    return problems


def runtime_warnings(config: Config, on: date | None = None) -> list[str]:
    """A runtime Lambda has deprecated but still runs: said once per provision, the run goes on."""
    on = on or today()
    runtime, dates = config.lambda_.runtime, PYTHON_RUNTIMES[config.lambda_.runtime]
    if dates.deprecated <= on < dates.block_create:
        return [f"lambda.runtime: {runtime} is deprecated since {dates.deprecated:%Y-%m-%d} (no more security patches); "
                f"Lambda stops creating functions with it on {dates.block_create:%Y-%m-%d} and updating them on "
                f"{dates.block_update:%Y-%m-%d}; set lambda.runtime to {_newest_runtime()}"]
    return []


def _describe(value) -> str:
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__}"
    if isinstance(value, int) and value.bit_length() > 64:   # repr() refuses ints over 4300 digits (ValueError)
        return f"a number of {value.bit_length()} bits (int)"
    return f"{value!r} ({type(value).__name__})"


def _key_path(loc: tuple) -> str:
    return ".".join("lambda" if part == "lambda_" else str(part) for part in loc) or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walk the models along loc (less the unknown key) and list the keys allowed there."""
    current = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            current = field.annotation if field else None
        elif get_origin(current) is dict:
            current = get_args(current)[1]  # a dict of models, e.g. lambda.functions.<Name>
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _explain(error: dict) -> str:
    loc = tuple(error["loc"])
    path = _key_path(loc)
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        known = _known_keys(Config, loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys here: {', '.join(known)}"
        return f"{path}: unknown key; {hint}"
    if kind == "missing":
        return f"{path}: missing; this key is required"
    message = error["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Input should be ")
    if kind == "string_pattern_mismatch":
        default = _PATTERN_NAME_HINT if error.get("ctx", {}).get("pattern") == _NAME.pattern else message
        message = _PATTERN_HINTS.get(loc[-1], default)
    return f"{path}: found {_describe(found)}, expected {message}"


_PATTERN_HINTS = {
    "stack": "lower-case letters, digits and '-', starting with a letter, at most 20 characters (it prefixes every AWS name)",
    "region": "an AWS region code like us-east-1",
    "handler": "'module.function', e.g. create_item.lambda_handler",
    "stage": "letters, digits and '_' (e.g. prod)",
}


def parse_config(data, source: str = "config.yaml") -> Config:
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): found {_describe(data)}, expected a mapping of settings (see config.yaml in the repository)"], source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_explain(e) for e in exc.errors()], source) from None
    missing = [
        f"lambda.functions.{name}.handler: found {fn.handler!r}, but {config.code_dir / (fn.module + '.py')} does not exist; "
        f"expected a module in {config.lambda_.code_dir}/"
        for name, fn in config.lambda_.functions.items()
        if not (config.code_dir / f"{fn.module}.py").is_file()
    ]
    problems = missing + package_problems(config) + environment_problems(config)
    if problems:
        raise ConfigError(problems, source)
    return config


# config.yaml is a page of settings (the repository's is under 5 KB). A larger file is a mistake (a log or a data
# file passed to --config), and PyYAML needs minutes for tens of megabytes: refuse it before parsing.
MAX_CONFIG_BYTES = 1024 * 1024


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, line: int, first_line: int):
        super().__init__(f"line {line}: key {key!r} appears twice in the same mapping (first at line {first_line}); "
                         f"YAML would silently keep only the last one, so remove or rename one of them")


class BadValue(yaml.YAMLError):
    """A scalar that matched a YAML type's pattern but could not be built: PyYAML then lets the ValueError of
    datetime() or int() through (a month 13; more digits than Python's limit for int(str), 4300)."""

    def __init__(self, node, exc: ValueError):
        shown = node.value if len(node.value) <= 40 else f"{node.value[:20]}..."
        kind = node.tag.rsplit(":", 1)[-1]
        what = ("is a number too long to read" if kind == "int" else
                f"looks like a date but is not one ({exc})" if kind == "timestamp" else f"cannot be read ({exc})")
        super().__init__(f"line {node.start_mark.line + 1}: {shown} {what}; put it in quotes if it is meant as text")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, but a key given twice in one mapping is an error: PyYAML keeps the last one
    silently, so a second `stack:` further down would point provision at another stack."""

    def flatten_mapping(self, node):
        # Checked here, as written, before the first flattening: SafeLoader flattens every mapping it builds, and
        # a merge source (`<<: &s {...}`) in place, possibly before it is built itself: its merged keys then sit
        # beside its own ones and would look written twice.
        if not getattr(node, "keys_checked", False):
            node.keys_checked = True
            self._check_unique_keys(node)
        super().flatten_mapping(node)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:   # only a scalar's own constructor raises it; BadValue is no ValueError
            if not isinstance(node, yaml.ScalarNode):
                raise
            raise BadValue(node, exc) from None

    def _check_unique_keys(self, node) -> None:
        if isinstance(node, yaml.MappingNode):
            first_lines: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults`: its keys may be overridden, that is what it is for
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in first_lines:
                        raise DuplicateKey(key, line, first_lines[key])
                    first_lines[key] = line
                except TypeError:
                    continue  # an unhashable key: SafeLoader's own error names it


def _read_config_text(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found; pass --config FILE or copy config.yaml from the repository"], str(path)) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc})"], str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        size = path.stat().st_size   # 0 for a device or a pipe, which has no size
        shown = f"{size} bytes" if size > MAX_CONFIG_BYTES else f"more than {MAX_CONFIG_BYTES} bytes read from it"
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB ({shown}); a config.yaml is "
                           f"a page of settings: check that --config names the right file"], str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:   # YAML is UTF-8 here; an editor's Latin-1 or UTF-16 is the usual cause
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}: line {line} is not UTF-8 (byte "
                           f"0x{raw[exc.start]:02x}): save the file as UTF-8"], str(path)) from None


def load_config(path: str | Path = ROOT / "config.yaml") -> Config:
    path = Path(path)
    text = _read_config_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except (DuplicateKey, BadValue) as exc:
        raise ConfigError([str(exc)], str(path)) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError([f"YAML syntax error{at}: {getattr(exc, 'problem', exc)}"], str(path)) from None
    except RecursionError:   # PyYAML composes and constructs nodes recursively, one level per bracket or indent
        raise ConfigError([f"{path}: nested too deeply (thousands of levels of lists or mappings); a config.yaml is "
                           f"a few levels deep: check that --config names the right file"], str(path)) from None
    return parse_config(data, str(path))
