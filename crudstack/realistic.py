"""A model of a real AWS account, in front of moto: what AWS does that moto does not.

moto answers at once and forgives much: tables are ACTIVE and functions Active
the moment they are made, tags show at once, nothing is ever throttled. A real account is not like
that, and a tool tested only on moto fails there. This model puts AWS's documented behaviour back,
as botocore hooks on one `Aws` (`AccountModel.attach`), so the tool's own calls meet it:

    behaviour            what the model makes AWS do                                source
    table CREATING       CreateTable answers CREATING; DescribeTable says so for     DynamoDB API CreateTable: "CreateTable is an
                         `table` s; UpdateTable/DeleteTable answer                     asynchronous operation ... TableStatus CREATING";
                         ResourceInUseException meanwhile                             terraform-provider-aws waitTableActive
    table DELETING       DeleteTable leaves the table DELETING for `table_delete` s:  DynamoDB API DeleteTable: "the table is in the
                         DescribeTable shows it, CreateTable of the name answers      DELETING state until DynamoDB completes the
                         ResourceInUseException, then it is gone                      deletion"; terraform waitTableDeleted
    tags lag             ListTagsOfResource answers the previous (empty) tag set for  DynamoDB API TagResource: "TagResource is an
                         `tags` s after CreateTable or TagResource                    asynchronous operation ... might return your
                                                                                      previous tag set ... or an empty tag set"
    IAM propagation      CreateFunction/UpdateFunctionConfiguration naming a role     IAM User Guide, "Changes that I make are not
                         younger than `role` s answer InvalidParameterValueException  always immediately visible"; chalice retries
                         "The role defined for the function cannot be assumed"        exactly this error (chalice/awsclient.py)
    function Pending     a new function is Pending for `function` s; updates,         Lambda Developer Guide, "Lambda function states":
                         AddPermission and RemovePermission answer                    "Any invocations or other API actions that
                         ResourceConflictException                                    operate on the function will fail"
    update InProgress    an updated function's LastUpdateStatus is InProgress for     same page, "Function states during update"
                         `function` s; another update answers ResourceConflictException
    create Failed        a function named in `fail_creates` ends Pending as Failed    same page: "When function creation fails ... you
                                                                                      must delete and recreate the function"
    update Failed        a function named in `fail_updates` ends its next update      same page: "Failed – The function update failed.
                         with LastUpdateStatus Failed, its previous code kept         Lambda aborts the update and the function's
                                                                                      previous code and configuration remain"
    Inactive             a function with no create/update for `inactive_after` s is   same page: "A function becomes inactive when it
                         State Inactive (StateReasonCode Idle)                        has been idle long enough ..."
    TagsError            with `deny_list_tags`, GetFunction answers TagsError in      Lambda Developer Guide, "Using tags on Lambda
                         place of Tags and ListTags answers AccessDeniedException     functions": lambda:ListTags "is also necessary
                                                                                      for GetFunction" on tagged functions
    quotas               a call over a documented rate it counts against (API          the pages cited at AWS_RATES below, the model's
                         Gateway, Lambda, CloudWatch, Logs, SNS, DynamoDB's control  own table (it imports nothing from crudstack)
                         plane) answers that service's throttle (429 + Retry-After,
                         Throttling/ThrottlingException, or SNS's Throttled)
    concurrent change    a change to a REST API while another change to it is applied terraform-provider-aws retries this ConflictException
                         (for `api_write` s) answers ConflictException                 on every API Gateway operation (CHANGELOG 3.24.0)
    lists lag            GetResources leaves out a resource (the root one too) for    observed on AWS; terraform-provider-aws reads new
                         `resource` s, ListFunctions a new function for `lists` s;    resources with RetryWhenNewResourceNotFound for
                         a second CreateResource of one path answers ConflictException its PropagationTimeout (2 minutes)
                         GetRestApis, GetUsagePlans, GetApiKeys and ListBackups leave  (no AWS page documents these lists' lag: the
                         out a new one for `lists` s                                  cautious case, see _lagging_lists)
    reserved env names   CreateFunction/UpdateFunctionConfiguration with a reserved   Lambda Developer Guide, "Defined runtime
                         variable name answer InvalidParameterValueException          environment variables" (reserved keys)
    e-mail pending       an e-mail subscription is "pending confirmation" until       SNS Developer Guide, "Email notifications":
                         `confirm(endpoint)`; ListSubscriptionsByTopic shows           the endpoint owner must confirm the subscription
                         PendingConfirmation

Time is a clock the model reads: tests give it a `SimClock` (also the Aws's clock and sleep), so a
30 s window costs no real time; the local AWS's `local.behaviour: realistic` gives it the wall clock
and `Delays.typical().scaled(local.behaviour_scale)`, and keeps its state in the state dir between
runs (`load`/`save`), so a provision right after a teardown meets the table still DELETING.
Every refusal is recorded in `refused` ("CreateFunction:role") and every stale answer in `hidden`
("DescribeTable:CREATING"), so a test can show the model really stood in the way.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from botocore.awsrequest import AWSResponse

ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
STATE_FILE = "realistic.json"


# == The model's own numbers ==============================================================================
# The model imports nothing from the code it checks: a wrong number there must fail a test, not be copied
# into the model. tests/unit/test_model_data.py compares these tables with the product's.


@dataclass(frozen=True)
class Rate:
    """A documented request rate: `requests` per `per_s` seconds, per account and Region, with a burst."""

    requests: int
    per_s: float
    burst: int | None = None


# service -> operation (botocore's name) -> Rate; "*" is the service's shared rate.
AWS_RATES: dict[str, dict[str, Rate]] = {
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html, table "API Gateway quotas for
    # creating, deploying and managing an API": fixed per-account rates; "Total operations: 10 requests per
    # second with a burst quota of 40 requests per second" ("*"). CreateRestApi and ImportRestApi: Regional.
    "apigateway": {
        "CreateApiKey": Rate(5, 1), "CreateDeployment": Rate(1, 5), "CreateDocumentationVersion": Rate(1, 20),
        "CreateDomainName": Rate(1, 30), "CreateResource": Rate(5, 1), "CreateRestApi": Rate(1, 3),
        "DeleteApiKey": Rate(5, 1), "DeleteDomainName": Rate(1, 30), "DeleteResource": Rate(5, 1),
        "DeleteRestApi": Rate(1, 30), "GetResources": Rate(5, 2), "ImportDocumentationParts": Rate(1, 30),
        "ImportRestApi": Rate(1, 3), "PutRestApi": Rate(1, 1), "UpdateAccount": Rate(1, 20),
        "UpdateDomainName": Rate(1, 30), "UpdateUsagePlan": Rate(1, 20), "*": Rate(10, 1, burst=40),
    },
    # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests: GetFunction 100 and
    # GetPolicy 15 requests per second; "Remainder of the control plane API requests (excludes invocation,
    # GetFunction, and GetPolicy requests): 15 requests per second across all APIs" ("*").
    "lambda": {"GetFunction": Rate(100, 1), "GetPolicy": Rate(15, 1), "*": Rate(15, 1)},
    # https://docs.aws.amazon.com/general/latest/gr/cw_region.html, "Rate of <operation> requests" rows.
    "cloudwatch": {"DeleteAlarms": Rate(3, 1), "DescribeAlarms": Rate(9, 1), "ListTagsForResource": Rate(10, 1),
                   "PutMetricAlarm": Rate(3, 1), "TagResource": Rate(20, 1), "UntagResource": Rate(20, 1)},
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html: DescribeLogGroups 5 and
    # CreateLogStream 50 transactions per second. The Logs API Reference gives none for CreateLogGroup, DeleteLogGroup,
    # PutRetentionPolicy, TagLogGroup or ListTagsLogGroup, and the quotas page's rows for them could not be read:
    # the model does not throttle them, as it cannot say when AWS would.
    "logs": {"CreateLogStream": Rate(50, 1), "DescribeLogGroups": Rate(5, 1)},
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-control-plane.html: "a control plane
    # throttle limit of 2,500 requests per second" ("*"); API_ListBackups.html: "You can call ListBackups a
    # maximum of five times per second".
    "dynamodb": {"ListBackups": Rate(5, 1), "*": Rate(2500, 1)},
    # Amazon SNS API Reference, each operation's page (https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html
    # and its neighbours): "This action is throttled at 30 transactions per second (TPS)" for ListTopics and
    # ListSubscriptionsByTopic, 100 for Subscribe and Unsubscribe; TagResource: "Tagging actions are limited to 10 TPS
    # per ... account, per ... Region". No figure is given there for CreateTopic, DeleteTopic, ListTagsForResource,
    # GetTopicAttributes or SetTopicAttributes: not throttled here.
    "sns": {"ListSubscriptionsByTopic": Rate(30, 1), "ListTopics": Rate(30, 1), "Subscribe": Rate(100, 1),
            "Unsubscribe": Rate(100, 1), "TagResource": Rate(10, 1)},
    # IAM (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html) limits sizes and counts and
    # documents no request rate: the model does not throttle IAM, as it cannot know when AWS would.
}
# Whether a call with a rate of its own is counted against its service's "*" rate too: API Gateway's total
# counts every operation; Lambda's remainder "excludes ... GetFunction, and GetPolicy"; DynamoDB's control
# plane counts every control-plane call.
SHARED_COUNTS_OWN = {"apigateway": True, "lambda": False, "dynamodb": True}
# Calls no request rate applies to: Lambda invocations (concurrency is their limit) and DynamoDB's data plane
# (capacity is its limit).
UNRATED = {
    "lambda": frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"}),
    "dynamodb": frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                           "BatchWriteItem", "TransactGetItems", "TransactWriteItems", "ExecuteStatement",
                           "BatchExecuteStatement", "ExecuteTransaction"}),
}
# How each service says "too fast" (botocore's service models): code, HTTP status, message.
THROTTLED = {
    "apigateway": ("TooManyRequestsException", 429, "Too Many Requests"),
    "lambda": ("TooManyRequestsException", 429, "Rate exceeded"),
    "cloudwatch": ("Throttling", 400, "Rate exceeded"),
    "logs": ("ThrottlingException", 400, "Rate exceeded"),
    "dynamodb": ("ThrottlingException", 400, "Rate of control plane requests exceeds the allowed throughput."),
    "sns": ("Throttled", 429, "Rate exceeded"),   # botocore's sns model: ThrottledException, code Throttled, HTTP 429
}


def rates_of(service: str, operation: str) -> list[tuple[str, Rate]]:
    """The rates one call counts against in the model, as (bucket key, Rate)."""
    table = AWS_RATES.get(service)
    if table is None or operation in UNRATED.get(service, ()):
        return []
    own = table.get(operation)
    counted = [(f"{service}:{operation}", own)] if own is not None else []
    if "*" in table and (own is None or SHARED_COUNTS_OWN.get(service, False)):
        counted.append((f"{service}:*", table["*"]))
    return counted


# "Defined runtime environment variables": the keys Lambda reserves and refuses in a function's configuration
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
RESERVED_ENVIRONMENT = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ",
})


class SimClock:
    """Simulated seconds (a crudstack.clock.Clock): sleeping moves it on at once. Use as Aws(clock=c, sleep=c.sleep).

    Work that runs at once in several threads (the executor's changes, a plan's reads) runs at once in
    simulated time too: each such thread `enter`s the clock at the simulated time it starts and moves only
    its own time on when it sleeps; whoever waited for the threads then `advance_to`s the latest of their
    ends. A run's simulated time is so the length of its longest chain of waits, as it is on the wall clock."""

    def __init__(self) -> None:
        self._base = 0.0
        self._thread = threading.local()
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    @property
    def now(self) -> float:
        return getattr(self._thread, "now", self._base)

    @now.setter
    def now(self, value: float) -> None:
        if hasattr(self._thread, "now"):
            self._thread.now = value
        else:
            self._base = value

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
        self.now += seconds

    def enter(self, at: float) -> None:
        """This thread's work starts at simulated time `at` (its own time from now on)."""
        self._thread.now = at

    def leave(self) -> float:
        """This thread's work is over: its simulated end time."""
        end = self._thread.now
        del self._thread.now
        return end

    def advance_to(self, at: float) -> None:
        """The caller waited for work that ended at `at`."""
        self.now = max(self.now, at)


@dataclass(frozen=True)
class Delays:
    role: float = 0.0            # IAM: a new role not yet assumable by Lambda
    table: float = 0.0           # DynamoDB CREATING
    table_delete: float = 0.0    # DynamoDB DELETING
    tags: float = 0.0            # DynamoDB tags not yet listed after CreateTable / TagResource
    function: float = 0.0        # Lambda Pending after create, InProgress after an update
    resource: float = 0.0        # API Gateway get_resources does not list a new resource yet
    lists: float = 0.0           # Lambda list_functions (and the lists below) do not list a new resource yet
    api_write: float = 0.0       # API Gateway: a change to one REST API is in progress; another one conflicts
    inactive_after: float | None = None   # Lambda: idle this long -> Inactive (None: never)

    @classmethod
    def typical(cls) -> "Delays":
        """Roughly what a real account shows: IAM about 10 s (it can take minutes), a new on-demand table
        about 8 s and its deletion about as long, DynamoDB tags "a few seconds", a function about 5 s.
        AWS documents no idle time for Inactive beyond "idle long enough" (weeks, in practice): 14 days."""
        return cls(role=10, table=8, table_delete=8, tags=5, function=5, resource=2, lists=2, api_write=0.2,
                   inactive_after=14 * 86400)

    def scaled(self, factor: float) -> "Delays":
        scaled = {k: (v * factor if v is not None else None) for k, v in asdict(self).items()}
        return replace(self, **scaled)

    @property
    def longest(self) -> float:
        return max(v for k, v in asdict(self).items() if k != "inactive_after" and v is not None)


def refusal(code: str, status: int, message: str, headers: dict[str, str] | None = None, **fields) -> tuple:
    """A before-call answer in AWS's place: botocore raises it as the service's modelled ClientError."""
    response = AWSResponse("https://realistic.invalid/", status, headers or {}, None)
    parsed = {"Error": {"Code": code, "Message": message}, **fields,
              "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(headers or {})}}
    return response, parsed


def answer(parsed: dict) -> tuple:
    """A successful before-call answer (for what moto has already forgotten, e.g. a DELETING table)."""
    return AWSResponse("https://realistic.invalid/", 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}}}


@dataclass
class Bucket:
    """AWS's documented rate and burst for one budget, as a token bucket checked over the calls it let through:
    no stretch of time from a to b may hold more than `capacity + rate * (b - a)` of them. Checked on the
    calls' own times, in whatever order they arrive: threads on a SimClock run apart in simulated time."""

    rate: float          # tokens a second
    capacity: float
    times: list[float] = field(default_factory=list)   # the calls let through, in time order
    horizon: float = 120.0   # stretches longer than this are not checked (a run's bursts are shorter)

    def wait(self, now: float) -> float:
        """0 if a call at `now` keeps the bucket's promise, else about how long it should have waited."""
        times = [t for t in self.times if t > now - self.horizon]
        times.insert(bisect.bisect_right(times, now), now)
        at = times.index(now)
        worst = 0.0
        for first in range(at + 1):
            for last in range(at, len(times)):
                over = (last - first + 1) - self.capacity - self.rate * (times[last] - times[first])
                if over > 1e-9:
                    worst = max(worst, over / self.rate)
        return worst

    def take(self, now: float) -> None:
        self.times = [t for t in self.times if t > now - self.horizon]
        bisect.insort(self.times, now)


def _name(function: str) -> str:
    """A function's name from its name or ARN (arn:...:function:NAME[:QUALIFIER])."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function


@dataclass
class AccountModel:
    clock: Callable[[], float]
    delays: Delays = field(default_factory=Delays)
    quotas: bool = True
    deny_list_tags: bool = False
    fail_updates: set[str] = field(default_factory=set)        # function names whose next update fails
    fail_creates: set[str] = field(default_factory=set)        # function names whose next create ends Failed
    # State, all in model seconds (from `clock`): when each window closes.
    roles: dict[str, float] = field(default_factory=dict)           # role ARN -> assumable from
    tables: dict[str, float] = field(default_factory=dict)          # name -> ACTIVE from
    deleting: dict[str, list] = field(default_factory=dict)         # name -> [gone from, last description]
    table_tags: dict[str, list] = field(default_factory=dict)       # table ARN -> [listed from, tags shown until then]
    functions: dict[str, list] = field(default_factory=dict)        # name -> [created|updated|failed, settled from, old sha]
    active_at: dict[str, float] = field(default_factory=dict)       # name -> last create/update
    listed_from: dict[str, float] = field(default_factory=dict)     # function name -> listed by ListFunctions from
    resources: dict[str, float] = field(default_factory=dict)       # API Gateway resource id -> listed from
    paths: dict[str, str] = field(default_factory=dict)             # "api parent part" -> resource id
    pending_emails: dict[str, str] = field(default_factory=dict)    # subscription ARN -> endpoint, until confirmed
    shas: dict[str, str] = field(default_factory=dict)              # function name -> CodeSha256 last shown
    shown_tags: dict[str, list] = field(default_factory=dict)       # table ARN -> tags last listed
    api_busy: dict[str, list] = field(default_factory=dict)         # REST API id -> [change started, change done]
    list_lag: dict[str, float] = field(default_factory=dict)        # "GetRestApis <id>" etc. -> listed from
    refused: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    persist_to: Path | None = None    # a folder: the state is saved there after every call (kill-safe)
    lags: Lags = field(default_factory=lambda: Lags())   # issue 20's behaviours: LagModel, below
    _buckets: dict[str, Bucket] = field(default_factory=dict, repr=False)
    _save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _lagging: LagModel | None = field(default=None, repr=False)

    def attach(self, aws) -> "AccountModel":
        aws.register("before-parameter-build", self._remember)
        aws.register("before-call", self._before)
        aws.register("after-call", self._after)
        if self.persist_to is not None:
            aws.register("after-call", lambda **_: self.save(self.persist_to))
        self.lagging.attach(aws)
        return self

    @property
    def lagging(self) -> LagModel:
        """The model's lags (crudstack.realistic.LagModel), one for its life: its refusals land in `refused`/`hidden` too."""
        if self._lagging is None:
            self._lagging = LagModel(self.clock, self.lags, refused=self.refused, hidden=self.hidden)
        return self._lagging

    def critical_path(self) -> float:
        """The least time a fresh provision can take under this model, following its longest chain of
        waits: the table turning ACTIVE; the role turning assumable, then the functions turning Active
        (their permissions wait for them); the API's resources being listed before the deployment.
        Everything else (the monitoring step, the methods) runs alongside."""
        d = self.delays
        return max(d.table, d.role + d.function, d.resource)

    def confirm(self, endpoint: str) -> None:
        """The owner of an e-mail address clicked the confirmation link."""
        self.pending_emails = {arn: e for arn, e in self.pending_emails.items() if e != endpoint}

    # -- kept between runs (local.behaviour: realistic) ----------------------------------------------------
    STATE = ("roles", "tables", "deleting", "table_tags", "functions", "active_at", "listed_from", "resources", "paths",
             "pending_emails", "shas", "shown_tags", "api_busy", "list_lag")

    def save(self, folder: Path) -> None:
        with self._save_lock:   # calls answer in many threads at once
            state = {name: getattr(self, name) for name in self.STATE}
            temporary = folder / f"{STATE_FILE}.tmp"
            temporary.write_text(json.dumps(state, default=str), encoding="utf-8")
            temporary.replace(folder / STATE_FILE)   # never a torn file for the next run

    def load(self, folder: Path) -> "AccountModel":
        self.persist_to = folder
        path = folder / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self   # nothing kept yet, or a torn file: start as a fresh account would look
        for name in self.STATE:
            if isinstance(state.get(name), dict):
                setattr(self, name, state[name])
        return self

    # -- hooks ---------------------------------------------------------------------------------------------
    def _remember(self, params, context, **_):
        context["model_params"] = dict(params)

    def _busy(self, function: str) -> list | None:
        entry = self.functions.get(_name(function))
        return entry if entry and entry[0] != "failed" and self.clock() < entry[1] else None

    def _before(self, model, context, **_):
        op, params, now = model.name, context.get("model_params") or {}, self.clock()
        service = model.service_model.service_name
        if self.quotas:
            refused = self._throttle(service, op, now)
            if refused:
                return refused
        if service == "apigateway":
            refused = self._overlapping_change(op, params, now)
            if refused:
                return refused
        if op in ("CreateFunction", "UpdateFunctionConfiguration"):
            reserved = sorted(set((params.get("Environment") or {}).get("Variables") or {}) & RESERVED_ENVIRONMENT)
            if reserved:
                self.refused.append(f"{op}:reserved")
                return refusal("InvalidParameterValueException", 400,
                               "Lambda was unable to configure your environment variables because the environment variables you "
                               "have provided contains reserved keys that are currently not supported for modification. "
                               f"Reserved keys used in this request: {','.join(reserved)}")
            if self.roles.get(params.get("Role", ""), 0) > now:
                self.refused.append(f"{op}:role")
                return refusal("InvalidParameterValueException", 400, ROLE_NOT_ASSUMABLE)
        if op == "CreateTable" and self.deleting.get(params.get("TableName", ""), [0])[0] > now:
            self.refused.append(f"{op}:deleting")
            return refusal("ResourceInUseException", 400, f"Table already exists: {params['TableName']}")
        if op == "DescribeTable" and self.deleting.get(params.get("TableName", ""), [0])[0] > now:
            self.hidden.append(f"{op}:DELETING")
            return answer({"Table": {**self.deleting[params["TableName"]][1], "TableStatus": "DELETING"}})
        if op in ("UpdateTable", "DeleteTable") and self.tables.get(params.get("TableName", ""), 0) > now:
            self.refused.append(f"{op}:table")
            return refusal("ResourceInUseException", 400,
                           f"Attempt to change a resource which is still in use: Table is being created: {params['TableName']}")
        if op == "ListTags" and self.deny_list_tags:
            self.refused.append(f"{op}:denied")
            return refusal("AccessDeniedException", 403, f"User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: "
                           f"lambda:ListTags on resource: {params.get('Resource')} because no identity-based policy allows the "
                           "lambda:ListTags action")
        if op in ("UpdateFunctionCode", "UpdateFunctionConfiguration", "AddPermission", "RemovePermission"):
            busy = self._busy(params.get("FunctionName", ""))
            if busy:
                self.refused.append(f"{op}:function")
                message = ("The operation cannot be performed at this time. The function is currently in the following state: Pending"
                           if busy[0] in ("created", "create-failing") else
                           f"The operation cannot be performed at this time. An update is in progress for resource: {params['FunctionName']}")
                return refusal("ResourceConflictException", 409, message)
        if op == "CreateResource":
            key = f"{params.get('restApiId')} {params.get('parentId')} {params.get('pathPart')}"
            if key in self.paths:
                self.refused.append(f"{op}:duplicate")
                return refusal("ConflictException", 409, f"Another resource with the same parent already has this name: {params.get('pathPart')}")
        return None

    def _throttle(self, service: str, op: str, now: float):
        counted = rates_of(service, op)
        if not counted:
            return None
        buckets = []
        for key, rate in counted:   # a shared rate is one bucket for every operation it counts
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity = float(rate.burst or rate.requests)
                bucket = self._buckets[key] = Bucket(rate.requests / rate.per_s, capacity)
            buckets.append(bucket)
        wait = max(bucket.wait(now) for bucket in buckets)
        if not wait:
            for bucket in buckets:
                bucket.take(now)
            return None
        self.refused.append(f"{op}:quota")
        retry_after = str(max(1, math.ceil(wait)))
        code, status, message = THROTTLED[service]
        # API Gateway's and Lambda's TooManyRequestsException carry Retry-After, which botocore parses into
        # retryAfterSeconds; the other services' throttles carry no such header.
        if code == "TooManyRequestsException":
            return refusal(code, status, message, {"Retry-After": retry_after}, retryAfterSeconds=retry_after)
        return refusal(code, status, message)

    def _after(self, model, http_response, parsed, context, **_):
        if getattr(http_response, "status_code", 500) >= 300:
            return
        op, params, now, d = model.name, context.get("model_params") or {}, self.clock(), self.delays
        self._lagging_lists(op, parsed, now)
        if op == "CreateRole":
            self.roles[parsed["Role"]["Arn"]] = now + d.role
        elif op == "CreateTable":
            name = params["TableName"]
            self.tables[name] = now + d.table
            self.deleting.pop(name, None)
            parsed["TableDescription"]["TableStatus"] = "CREATING"
            self.table_tags[parsed["TableDescription"]["TableArn"]] = [now + d.tags, []]
        elif op == "DescribeTable" and self.tables.get(params["TableName"], 0) > now:
            parsed["Table"]["TableStatus"] = "CREATING"
            self.hidden.append(f"{op}:CREATING")
        elif op == "DeleteTable":
            description = dict(parsed.get("TableDescription") or {})
            self.deleting[params["TableName"]] = [now + d.table_delete, {k: v for k, v in description.items() if k != "TableStatus"}]
            parsed.setdefault("TableDescription", {})["TableStatus"] = "DELETING"
        elif op == "TagResource" and model.service_model.service_name == "dynamodb":
            self.table_tags[params["ResourceArn"]] = [now + d.tags, self.shown_tags.get(params["ResourceArn"], [])]
        elif op == "ListTagsOfResource":
            entry = self.table_tags.get(params["ResourceArn"])
            if entry and entry[0] > now:
                parsed["Tags"] = list(entry[1])
                self.hidden.append(f"{op}:stale")
            else:
                self.shown_tags[params["ResourceArn"]] = list(parsed.get("Tags") or [])
        elif op == "CreateFunction":
            name = params["FunctionName"]
            self.functions[name] = ["create-failing" if name in self.fail_creates else "created", now + d.function, None]
            self.fail_creates.discard(name)
            self.active_at[name] = now
            self.listed_from[name] = now + d.lists
            self._pending(parsed, "created")
        elif op in ("UpdateFunctionCode", "UpdateFunctionConfiguration"):
            name = _name(params["FunctionName"])
            previous = self.functions.get(name)
            old_sha = previous[2] if previous and previous[0] == "failed" else None
            how = "failing" if name in self.fail_updates else "updated"
            self.fail_updates.discard(name)
            self.functions[name] = [how, now + d.function, old_sha or self.shas.get(name)]
            self.active_at[name] = now
            self._pending(parsed, "updated")
        elif op in ("GetFunction", "GetFunctionConfiguration"):
            configuration = parsed["Configuration"] if op == "GetFunction" else parsed
            self._show_function(op, _name(params["FunctionName"]), configuration, now)
            if op == "GetFunction" and self.deny_list_tags:
                parsed.pop("Tags", None)
                parsed["TagsError"] = {"ErrorCode": "AccessDeniedException",
                                       "Message": "not authorized to perform: lambda:ListTags"}
                self.hidden.append(f"{op}:TagsError")
        elif op == "ListFunctions":
            listed = [f for f in parsed.get("Functions", []) if self.listed_from.get(f["FunctionName"], 0) <= now]
            if len(listed) != len(parsed.get("Functions", [])):
                self.hidden.append(f"{op}:unlisted")
            parsed["Functions"] = listed
        elif op == "DeleteFunction":
            for table in (self.functions, self.active_at, self.listed_from):
                table.pop(_name(params["FunctionName"]), None)
        elif op == "CreateRestApi" and parsed.get("rootResourceId"):
            self.resources[parsed["rootResourceId"]] = now + d.resource
        elif op == "CreateResource":
            self.resources[parsed["id"]] = now + d.resource
            self.paths[f"{params['restApiId']} {params['parentId']} {params['pathPart']}"] = parsed["id"]
        elif op == "GetResources":
            listed = [r for r in parsed.get("items", []) if self.resources.get(r["id"], 0) <= now]
            if len(listed) != len(parsed.get("items", [])):
                self.hidden.append(f"{op}:unlisted")
            parsed["items"] = listed
        elif op == "DeleteRestApi":
            self.paths = {k: v for k, v in self.paths.items() if not k.startswith(f"{params['restApiId']} ")}
        elif op == "Subscribe" and params.get("Protocol") == "email":
            self.pending_emails[parsed["SubscriptionArn"]] = params.get("Endpoint", "")
            parsed["SubscriptionArn"] = "pending confirmation"
        elif op in ("ListSubscriptionsByTopic", "ListSubscriptions"):
            for sub in parsed.get("Subscriptions", []):
                if sub.get("SubscriptionArn") in self.pending_emails:
                    sub["SubscriptionArn"] = "PendingConfirmation"
                    self.hidden.append(f"{op}:pending")

    # == Issue 20: writes that overlap on one REST API, lists that lag ========================================
    # API Gateway serializes the changes to one REST API: a change that arrives while another is being applied
    # is refused with ConflictException "Unable to complete operation due to concurrent modification. Please try
    # again later." AWS documents no duration; terraform-provider-aws retries this error on every API Gateway
    # operation (CHANGELOG 3.24.0: "service/apigateway: All operations will now automatically retry on
    # ConflictException: Unable to complete operation due to concurrent modification").
    CONCURRENT_CHANGE = "Unable to complete operation due to concurrent modification. Please try again later."

    def _overlapping_change(self, op: str, params: dict, now: float):
        api = params.get("restApiId")
        if not api or not self.delays.api_write or op.startswith(("Get", "List")):
            return None
        started, done = self.api_busy.get(api, (0.0, 0.0))
        if started <= now < done:
            self.refused.append(f"{op}:concurrent")
            return refusal("ConflictException", 409, self.CONCURRENT_CHANGE)
        self.api_busy[api] = [now, now + self.delays.api_write]
        return None

    # A new REST API, usage plan, API key or backup is left out of its list for `lists` s. AWS documents no such
    # lag for these lists, and none for their absence either: this is the cautious case, as for ListFunctions
    # and GetResources above (terraform-provider-aws reads what it has just made with RetryWhenNewResourceNotFound
    # for its PropagationTimeout, internal/tfresource/retry.go). A retried create that looks first must not
    # count on seeing what its lost first answer made.
    LISTED_BY = {"CreateRestApi": ("GetRestApis", "id"), "CreateUsagePlan": ("GetUsagePlans", "id"),
                 "CreateApiKey": ("GetApiKeys", "id")}
    LIST_KEYS = {"GetRestApis": ("items", "id"), "GetUsagePlans": ("items", "id"), "GetApiKeys": ("items", "id"),
                 "ListBackups": ("BackupSummaries", "BackupArn")}

    def _lagging_lists(self, op: str, parsed: dict, now: float) -> None:
        if op in self.LISTED_BY:
            listing, key = self.LISTED_BY[op]
            if parsed.get(key):
                self.list_lag[f"{listing} {parsed[key]}"] = now + self.delays.lists
        elif op == "CreateBackup":
            arn = (parsed.get("BackupDetails") or {}).get("BackupArn")
            if arn:
                self.list_lag[f"ListBackups {arn}"] = now + self.delays.lists
        elif op in self.LIST_KEYS:
            field_name, key = self.LIST_KEYS[op]
            items = parsed.get(field_name) or []
            listed = [i for i in items if self.list_lag.get(f"{op} {i.get(key)}", 0) <= now]
            if len(listed) != len(items):
                self.hidden.append(f"{op}:unlisted")
                parsed[field_name] = listed

    # -- Lambda ----------------------------------------------------------------------------------------------
    def _show_function(self, op: str, name: str, configuration: dict, now: float) -> None:
        entry = self.functions.get(name)
        if entry and entry[0] == "create-failing" and now >= entry[1]:
            configuration.update(State="Failed", StateReasonCode="InternalError", StateReason="The function could not be created.")
            configuration.pop("LastUpdateStatus", None)
            self.hidden.append(f"{op}:Failed")
            return
        if entry and entry[0] == "failing" and now >= entry[1]:
            entry[0] = "failed"
        if entry and entry[0] == "failed":
            configuration.update(LastUpdateStatus="Failed", LastUpdateStatusReasonCode="InternalError",
                                 LastUpdateStatusReason="The update failed: Lambda kept the function's previous code and configuration.")
            if entry[2]:
                configuration["CodeSha256"] = entry[2]
            self.hidden.append(f"{op}:failed")
            return
        self.shas[name] = configuration.get("CodeSha256")
        busy = self._busy(name)
        if busy:
            self._pending(configuration, busy[0])
            self.hidden.append(f"{op}:{busy[0]}")
            return
        idle = self.delays.inactive_after
        if idle is not None and now - self.active_at.get(name, 0.0) >= idle:
            configuration.update(State="Inactive", StateReasonCode="Idle",
                                 StateReason="The function is inactive because it has not been invoked for a long time.")
            self.hidden.append(f"{op}:Inactive")

    @staticmethod
    def _pending(configuration: dict, how: str) -> None:
        if how in ("created", "create-failing"):
            configuration.update(State="Pending", StateReason="The function is being created.", StateReasonCode="Creating")
            configuration.pop("LastUpdateStatus", None)
        else:
            configuration.update(State="Active", LastUpdateStatus="InProgress",
                                 LastUpdateStatusReason="The function is being updated.", LastUpdateStatusReasonCode="InProgress")


# -- lags behind a write (issue 20) ---------------------------------------------------------------------------
# What AWS shows a moment after a write, beyond the windows of `Delays`: each found by a review of the tool
# against AWS's documentation and terraform-provider-aws, and each a way a run on a real account failed,
# was denied or lost data. The model is LagModel (attached with AccountModel, its numbers in `Lags`);
# IdentityPolicy and LiveClient stand beside it, attached by the tests that need them.
#
#    behaviour              what the model makes AWS do                               source
#    DeleteRole conflict    DeleteRole answers DeleteConflict for `role_policies` s     terraform-provider-aws internal/service/iam/
#                           after DeleteRolePolicy/DetachRolePolicy on the role         role.go, DeleteRole: retries DeleteConflict
#                                                                                       for its propagationTimeout; IAM User Guide,
#                                                                                       "Changes that I make are not always
#                                                                                       immediately visible"
#    resource policy        after RemovePermission, GetPolicy goes on showing the      terraform-provider-aws internal/service/lambda/
#                           statement and AddPermission of its statement id answers   permission.go: AddPermission retried on
#                           ResourceConflictException for `resource_policy` s         ResourceConflictException, RemovePermission
#                                                                                       followed by RetryUntilNotFound on GetPolicy,
#                                                                                       writes serialized per function ("Retry for IAM
#                                                                                       and Lambda eventual consistency")
#    function Deleting      a deleted function is State Deleting for                  terraform-provider-aws internal/service/lambda/
#                           `function_delete` s: GetFunction(Configuration) show it,  function.go: resourceFunctionDelete waits with
#                           CreateFunction of its name answers                        waitFunctionDeleted (pending: ... Deleting);
#                           ResourceConflictException                                 Lambda API Reference, FunctionConfiguration
#                                                                                       State (Deleting)
#    eventually consistent  a Scan without ConsistentRead leaves out the items        DynamoDB API Reference, Scan, ConsistentRead:
#    Scan                   written (through LiveClient) in the last `scan` s         "If ConsistentRead is false, then the data
#                                                                                       returned from Scan might not contain the
#                                                                                       results from other recently completed write
#                                                                                       operations"
#    identity policy        IdentityPolicy: a Lambda call on a function that no        IAM User Guide, "Policy evaluation logic": a
#                           Allow statement of the caller's policy covers (Action     request is implicitly denied unless a
#                           and Resource) answers AccessDeniedException               statement allows its action on its resource
#    a client of the API    LiveClient: writes an item before each of the tool's      the API serves writes until its REST API or
#                           calls while the REST API and every function are there     its functions are gone (the tutorial's stack)
#
# AWS publishes no figure for any of these lags; `Lags.typical()` holds seconds of the order seen, well
# inside terraform-provider-aws's propagation timeouts (2 minutes for IAM, lambdaPropagationTimeout for Lambda).


@dataclass(frozen=True)
class Lags:
    role_policies: float = 0.0    # IAM: DeleteRole answers DeleteConflict this long after a policy left the role
    resource_policy: float = 0.0  # Lambda: a removed permission statement still shows and still holds its id
    function_delete: float = 0.0  # Lambda: a deleted function is Deleting, its name taken
    scan: float = 0.0             # DynamoDB: an eventually consistent Scan misses writes this recent

    @classmethod
    def typical(cls) -> "Lags":
        return cls(role_policies=3, resource_policy=3, function_delete=5, scan=1)

    def scaled(self, factor: float) -> "Lags":
        return replace(self, **{k: v * factor for k, v in asdict(self).items()})


def _covers(key: dict, item: dict) -> bool:
    return all(item.get(name) == value for name, value in key.items())


@dataclass
class LagModel:
    """The lags above, as botocore hooks on one Aws (AccountModel.attach attaches it with the rest)."""

    clock: Callable[[], float]
    lags: Lags = field(default_factory=Lags)
    refused: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    policies_left: dict[str, float] = field(default_factory=dict)   # role name -> DeleteRole conflicts until
    policies: dict[str, dict] = field(default_factory=dict)         # function name -> its resource policy as last read
    removed: dict[str, float] = field(default_factory=dict)         # "function statement-id" -> still shows until
    seen: dict[str, dict] = field(default_factory=dict)             # function name -> GetFunction's answer as last read
    deleting: dict[str, list] = field(default_factory=dict)         # function name -> [gone from, GetFunction's answer]
    writes: dict[str, list] = field(default_factory=dict)           # table -> [(key, written at)]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def attach(self, aws) -> "LagModel":
        aws.register("before-parameter-build", self._remember)
        aws.register("before-call", self._before)
        aws.register("after-call", self._after)
        return self

    def wrote(self, table: str, key: dict) -> None:
        """An item was written to `table` (by LiveClient): an eventually consistent Scan misses it for a while."""
        with self._lock:
            self.writes.setdefault(table, []).append((key, self.clock()))

    @staticmethod
    def _remember(params, context, **_):
        context["lag_params"] = dict(params)

    def _before(self, model, context, **_):
        op, params, now = model.name, context.get("lag_params") or {}, self.clock()
        name = _name(params.get("FunctionName", ""))
        if op == "DeleteRole" and self.policies_left.get(params.get("RoleName", ""), 0) > now:
            self.refused.append(f"{op}:conflict")
            return refusal("DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
        if op == "AddPermission" and self.removed.get(f"{name} {params.get('StatementId')}", 0) > now:
            self.refused.append(f"{op}:stale")
            return refusal("ResourceConflictException", 409, f"The statement id ({params.get('StatementId')}) provided already "
                           "exists. Please provide a new statement id, or remove the existing statement.")
        if op == "GetPolicy" and name in self.policies and any(
                key.startswith(f"{name} ") and until > now for key, until in self.removed.items()):
            self.hidden.append(f"{op}:stale")
            context["lag_answered"] = True
            return answer({"Policy": json.dumps(self.policies[name]), "RevisionId": "stale"})
        deleting = self.deleting.get(name)
        if deleting and deleting[0] > now:
            if op == "CreateFunction":
                self.refused.append(f"{op}:deleting")
                return refusal("ResourceConflictException", 409, f"Function already exist: {name}")
            if op in ("GetFunction", "GetFunctionConfiguration"):
                self.hidden.append(f"{op}:Deleting")
                context["lag_answered"] = True
                shown = json.loads(json.dumps(deleting[1], default=str))
                shown["Configuration"].update(State="Deleting", StateReason="The function is being deleted.")
                shown["Configuration"].pop("LastUpdateStatus", None)
                return answer(shown if op == "GetFunction" else shown["Configuration"])
        return None

    def _after(self, model, http_response, parsed, context, **_):
        if getattr(http_response, "status_code", 500) >= 300 or context.get("lag_answered"):
            return   # a refusal, or a stale answer of ours: nothing learnt about the account
        op, params, now, lags = model.name, context.get("lag_params") or {}, self.clock(), self.lags
        name = _name(params.get("FunctionName", ""))
        if op in ("DeleteRolePolicy", "DetachRolePolicy") and lags.role_policies:
            self.policies_left[params["RoleName"]] = now + lags.role_policies
        elif op == "GetPolicy":
            self.policies[name] = json.loads(parsed["Policy"])
        elif op == "RemovePermission" and lags.resource_policy:
            self.removed[f"{name} {params['StatementId']}"] = now + lags.resource_policy
        elif op in ("GetFunction", "GetFunctionConfiguration", "CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration"):
            configuration = parsed["Configuration"] if op == "GetFunction" else parsed
            shown = dict(self.seen.get(name) or {})
            shown["Configuration"] = {k: v for k, v in configuration.items() if k != "ResponseMetadata"}
            if op == "GetFunction":
                shown.update({k: v for k, v in parsed.items() if k not in ("Configuration", "ResponseMetadata")})
            self.seen[name] = shown
        elif op == "DeleteFunction" and lags.function_delete and name in self.seen:
            self.deleting[name] = [now + lags.function_delete, self.seen.pop(name)]
        elif op == "Scan" and not params.get("ConsistentRead"):
            self._stale_scan(params["TableName"], parsed, now)

    def _stale_scan(self, table: str, parsed: dict, now: float) -> None:
        """Answer as a copy of the table that has not seen the last `scan` seconds of writes: their items are left
        out, and so is a LastEvaluatedKey naming one of them (that copy's page ended before it)."""
        with self._lock:
            recent = [key for key, at in self.writes.get(table, []) if now - at < self.lags.scan]
        if not recent:
            return
        items = [item for item in parsed.get("Items", []) if not any(_covers(key, item) for key in recent)]
        last = parsed.get("LastEvaluatedKey")
        if len(items) == len(parsed.get("Items", [])) and not (last and any(_covers(key, last) for key in recent)):
            return
        parsed["Items"], parsed["Count"] = items, len(items)
        if last and any(_covers(key, last) for key in recent):
            del parsed["LastEvaluatedKey"]
        self.hidden.append("Scan:stale")


@dataclass
class IdentityPolicy:
    """The caller's identity policy (e.g. deployer-policy.json), evaluated as IAM does for Lambda's calls on one
    function: moto checks the action of a request only, never its Resource, so a call outside the policy's
    resources would pass there and be denied on AWS. Allow statements only (the policy has no Deny)."""

    document: dict
    account: str = "123456789012"
    refused: list[str] = field(default_factory=list)

    def attach(self, aws) -> "IdentityPolicy":
        aws.register("before-parameter-build", self._check)
        aws.register("before-call", self._denial)
        return self

    def _check(self, params, model, context, **_):
        if model.service_model.service_name != "lambda" or not (params.get("FunctionName") or params.get("Resource")):
            return
        target = params.get("FunctionName") or params.get("Resource")
        arn = target if str(target).startswith("arn:") else (
            f"arn:aws:lambda:{context.get('client_region')}:{self.account}:function:{target}")
        action = f"lambda:{model.name}"
        if not self.allows(action, arn):
            self.refused.append(f"{model.name}:{_name(arn)}")
            context["policy_denied"] = (action, arn)

    def allows(self, action: str, arn: str) -> bool:
        for statement in self.document.get("Statement", []):
            actions = statement.get("Action", [])
            resources = statement.get("Resource", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            if statement.get("Effect") == "Allow" and any(fnmatch.fnmatch(action.lower(), a.lower()) for a in actions) \
                    and any(fnmatch.fnmatchcase(arn, r) for r in resources):
                return True
        return False

    def _denial(self, model, context, **_):
        denied = context.get("policy_denied")
        if denied is None:
            return None
        action, arn = denied
        return refusal("AccessDeniedException", 403, f"User: arn:aws:iam::{self.account}:user/deployer is not authorized to "
                       f"perform: {action} on resource: {arn} because no identity-based policy allows the {action} action")


@dataclass
class LiveClient:
    """Someone using the stack's API during a teardown (a browser tab left open, a script): before each of the
    tool's calls, while the REST API and its functions are all there, it writes one item and counts it as
    acknowledged. From the tool's first call that is not a read on (after the plan), unless `from_start`."""

    lagging: LagModel | None        # told of every write (an eventually consistent Scan misses it a while)
    table: str
    put: Callable[[dict], None]     # writes one item with this key, as POST /items would
    serving: Callable[[], bool]     # the REST API and every function are still there
    from_start: bool = False
    acknowledged: list[str] = field(default_factory=list)
    started: bool = False
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def attach(self, aws) -> "LiveClient":
        aws.register("before-call", self.hook)
        return self

    def hook(self, model, **_):
        if not self.started:
            if not self.from_start and model.name.startswith(("Get", "List", "Describe", "Scan", "Query")):
                return None   # the tool is still reading what exists: its plan
            self.started = True
        if not self.serving():
            return None
        key = {"id": {"S": f"live-{next(self._numbers)}"}}   # count() hands each thread its own number
        try:
            self.put(key)
        except Exception:  # noqa: BLE001 - the API answered an error: the client saw it fail, nothing acknowledged
            return None
        self.acknowledged.append(key["id"]["S"])
        if self.lagging is not None:
            self.lagging.wrote(self.table, key)
        return None


def local_model(state_dir: Path, scale: float) -> AccountModel:
    """The model as `local.behaviour: realistic` runs it: wall-clock time, typical delays scaled."""
    return AccountModel(clock=time.time, delays=Delays.typical().scaled(scale), lags=Lags.typical().scaled(scale)).load(state_dir)
