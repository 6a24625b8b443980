"""The one door to AWS: clients, retries, not-found, call counting.

Steps call boto3 through `Aws.call(client.operation, ...)` and `Aws.find(...)`, so
that retry policy, "not found" and call accounting live here and nowhere else.
botocore's own retries are switched off: tenacity is our retry policy, and every
HTTP request botocore sends is one counted call.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import threading
import math
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import botocore.exceptions
import botocore.loaders
import botocore.regions
import botocore.session
from botocore.config import Config as BotoConfig
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from crudstack.clock import Clock, WallClock
from crudstack.errors import AwsCallFailed
from crudstack.quotas import budgets, quota_for

log = logging.getLogger("crudstack.aws")

# Error codes AWS uses for throttling and its own transient faults.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestThrottled", "RequestThrottledException", "SlowDown",
    "PriorRequestNotComplete", "TransactionInProgressException", "EC2ThrottledException", "BandwidthLimitExceeded",
    "Throttled",   # SNS (botocore's sns model: ThrottledException, code Throttled, HTTP 429)
})
# Codes that say another request is changing the same thing right now: the next try, once it is done,
# goes through. Each is in botocore's model of the service that sends it.
CONFLICT_CODES = frozenset({
    "ConcurrentModification",            # IAM, 409: "multiple requests to change this object were submitted simultaneously"
    "ConcurrentModificationException",   # CloudWatch, 429: "more than one process tried to modify a resource at the same time"
    "OperationAbortedException",         # CloudWatch Logs: "multiple concurrent requests to update the same resource were in conflict"
    "ConcurrentAccess",                  # SNS, 400: "can't perform multiple operations on a tag simultaneously"
})
SERVER_FAULT_CODES = frozenset({
    "InternalFailure", "InternalError", "InternalServerError", "InternalServerErrorException", "ServiceUnavailable",
    "ServiceUnavailableException", "ServiceException", "ServiceFailure", "RequestTimeout", "RequestTimeoutException",
})
# A new role that IAM has not yet propagated to Lambda: CreateFunction / UpdateFunctionConfiguration
# naming it are refused with this until it has.
ROLE_NOT_YET_ASSUMABLE = (
    ("InvalidParameterValueException", "cannot be assumed by Lambda"),
    ("InvalidParameterValueException", "role defined for the function cannot be assumed"),
)
# How long that refusal is retried, whatever retry.deadline_s says. AWS documents IAM as eventually
# consistent without a bound ("Changes that I make are not always immediately visible",
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency);
# terraform-provider-aws retries "The role defined for the function cannot be assumed by Lambda" on
# CreateFunction for lambdaPropagationTimeout = 15 minutes (internal/service/lambda/function.go,
# retryFunctionOp; consts.go, where iamPropagationTimeout is 2 minutes), and so do we.
IAM_PROPAGATION_S = 15 * 60
# Messages that mark AWS's eventual consistency rather than a real problem.
EVENTUAL_CONSISTENCY = ROLE_NOT_YET_ASSUMABLE + (
    ("ResourceConflictException", "update is in progress"),             # Lambda update still running
    ("ResourceConflictException", "operation cannot be performed at this time"),
    ("ResourceInUseException", "still in use"),                         # DynamoDB table still CREATING/UPDATING
    ("ResourceInUseException", "being created"),
    ("ResourceInUseException", "being updated"),
    ("ConflictException", "concurrent"),                                # API Gateway concurrent modification
    ("ConflictException", "try again"),
    # AddPermission of a statement id whose removal Lambda does not show yet: terraform-provider-aws retries
    # AddPermission on ResourceConflictException for lambdaPropagationTimeout ("Retry for IAM and Lambda eventual
    # consistency", internal/service/lambda/permission.go). Our own statement, made by a call whose answer was
    # lost, answers the same: the retry's first look (calls.Once) finds it.
    ("ResourceConflictException", "provided already exists"),
)
# (operation, code, message fragment) that AWS answers for a while after an earlier call of ours, and then no
# more. IAM refuses DeleteRole with DeleteConflict ("must detach all policies first", "must delete policies
# first") for a while after the role's policies were removed; terraform-provider-aws retries that for its IAM
# propagation timeout (internal/service/iam/role.go, DeleteRole). Its other DeleteConflict, "must remove roles
# from instance profile first", never clears by waiting (terraform removes the role from its instance profiles
# before DeleteRole, same file): someone else's profile, so it fails at once and says so.
EVENTUAL_CONFLICTS = (("DeleteRole", "DeleteConflict", "policies"),)
CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, proxy and SSL errors
    # ConnectionClosedError, ReadTimeoutError and ResponseStreamingError derive from HTTPClientError,
    # not ConnectionError: the request may have been sent and its answer lost.
    botocore.exceptions.HTTPClientError,
)
# Each service's answers that a thing is not there, and that what a create makes is there already (our own
# create, its answer lost): the one place the codes are spelled. Steps call the find_* verbs below, or name
# an entry for a record's accepted codes (Call(..., ok=NOT_FOUND["iam"])). From each API Reference's Errors:
# DynamoDB DescribeTable/DeleteTable ResourceNotFoundException, CreateTable ResourceInUseException; IAM
# GetRole/DeleteRole NoSuchEntity (moto: NoSuchEntityException too), CreateRole EntityAlreadyExists; Lambda
# GetFunction/DeleteFunction/GetPolicy ResourceNotFoundException, CreateFunction ResourceConflictException;
# API Gateway NotFoundException and ConflictException; CloudWatch Logs DeleteLogGroup
# ResourceNotFoundException, CreateLogGroup ResourceAlreadyExistsException; SNS NotFound (moto and older
# SDKs: NotFoundException, ResourceNotFound).
NOT_FOUND = {
    "apigateway": ("NotFoundException",),
    "dynamodb": ("ResourceNotFoundException",),
    "iam": ("NoSuchEntity", "NoSuchEntityException"),
    "lambda": ("ResourceNotFoundException",),
    "logs": ("ResourceNotFoundException",),
    "sns": ("NotFound", "NotFoundException", "ResourceNotFound"),
}
ALREADY_EXISTS = {
    "apigateway": ("ConflictException",),
    "dynamodb": ("ResourceInUseException",),
    "iam": ("EntityAlreadyExists",),
    "lambda": ("ResourceConflictException",),
    "logs": ("ResourceAlreadyExistsException",),
}
# What foreign_errors makes ours: every botocore exception but a model's missing attribute (a bug), and
# wait_until's TimeoutError. tests/unit/test_aws.py checks that each of botocore's kinds is one of these.
FOREIGN_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, TimeoutError)
# The parameter that names what a call is about, and how a person calls that (for error messages).
TARGET_PARAMS = (("TableName", "table"), ("RoleName", "role"), ("FunctionName", "function"), ("restApiId", "REST API"),
                 ("logGroupName", "log group"), ("TopicArn", "SNS topic"), ("AlarmName", "alarm"), ("ResourceArn", "resource"),
                 ("ResourceARN", "resource"), ("SubscriptionArn", "subscription"), ("name", "REST API"), ("Name", "SNS topic"))
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Query", "Scan", "BatchGet", "Filter", "Search", "Lookup")


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def error_message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Message") or str(exc)
    return str(exc)


def _matches(exc: BaseException, patterns: tuple[tuple[str, str], ...]) -> bool:
    code, message = error_code(exc), error_message(exc).lower()
    return any(code == c and fragment.lower() in message for c, fragment in patterns)


def is_role_propagation(exc: BaseException) -> bool:
    """Lambda cannot assume a role IAM has not yet propagated: retried for IAM_PROPAGATION_S at least."""
    return isinstance(exc, botocore.exceptions.ClientError) and _matches(exc, ROLE_NOT_YET_ASSUMABLE)


def is_throttling(exc: BaseException) -> bool:
    return (error_code(exc) or "") in THROTTLING_CODES


def retry_after_s(exc: BaseException) -> float | None:
    """How long AWS asked us to wait before the next try (HTTP Retry-After), or None if it did not say.

    API Gateway's and Lambda's TooManyRequestsException model the header as retryAfterSeconds (botocore's
    apigateway and lambda models), which botocore puts at the top of the parsed error; for any other
    service the header is only in ResponseMetadata.HTTPHeaders, where botocore lower-cases its name.
    """
    if not isinstance(exc, botocore.exceptions.ClientError):
        return None
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    for value in (exc.response.get("retryAfterSeconds"), headers.get("retry-after")):
        seconds = _delay_s(value, headers.get("date"))
        if seconds is not None:
            return seconds
    return None


def _delay_s(value: Any, date: str | None) -> float | None:
    """Retry-After is delay-seconds or an HTTP-date (RFC 9110, 10.2.3); a date is measured against the
    response's own Date header, so neither our clock nor its skew enters into it."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        if not date:
            return None
        try:
            seconds = (parsedate_to_datetime(text) - parsedate_to_datetime(date)).total_seconds()
        except (TypeError, ValueError):
            return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# How long a status is waited for between two looks at most (see Aws.wait_until).
POLL_MAX_S = 0.75
# How long a retry of an eventual-consistency error waits at most (see Aws.retrying).
CONSISTENCY_WAIT_MAX_S = 0.75


def is_eventual_consistency(exc: BaseException) -> bool:
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    code, message = error_code(exc) or "", error_message(exc).lower()
    if any(getattr(exc, "operation_name", None) == op and code == c and fragment in message
           for op, c, fragment in EVENTUAL_CONFLICTS):
        return True
    return any(code == c and fragment.lower() in message for c, fragment in EVENTUAL_CONSISTENCY)


def is_transient(exc: BaseException) -> bool:
    """Throttling, conflicting changes, 5xx, dropped connections and eventual consistency: worth another try."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    code = error_code(exc) or ""
    if code in THROTTLING_CODES or code in CONFLICT_CODES or code in SERVER_FAULT_CODES:
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500:
        return True
    return is_eventual_consistency(exc)


def is_mutating(operation: str) -> bool:
    """From botocore's operation name (CreateTable) or boto3's method name (create_table)."""
    if "_" in operation or operation.islower():
        operation = "".join(part.title() for part in operation.split("_"))
    return not operation.startswith(READ_PREFIXES)


@functools.cache
def _endpoints() -> botocore.regions.EndpointResolver:
    """botocore's own partition data (botocore/data/endpoints.json): partitions, their regions and DNS suffixes."""
    return botocore.regions.EndpointResolver(botocore.loaders.create_loader().load_data("endpoints"))


def partition_of_region(region: str) -> str:
    """The partition botocore places a region in: aws, aws-cn, aws-us-gov, ... (a region it has not
    heard of is matched by its partition's name pattern, e.g. any cn-* region is aws-cn)."""
    try:
        return _endpoints().get_partition_for_region(region)
    except botocore.exceptions.UnknownRegionError:
        return "aws"


def dns_suffix(partition: str, region: str) -> str:
    """The domain a partition's endpoints live under: amazonaws.com, amazonaws.com.cn for aws-cn, ...
    A partition newer than this botocore falls back to the suffix of the region's partition."""
    return _endpoints().get_partition_dns_suffix(partition) or _endpoints().get_partition_dns_suffix(partition_of_region(region))


@functools.cache
def aws_domains() -> frozenset[str]:
    """The domains AWS's own endpoints live under, every partition's, from botocore's partition data
    (botocore/data/partitions.json): amazonaws.com, api.aws, amazonaws.com.cn, ..."""
    partitions = botocore.loaders.create_loader().load_data("partitions")["partitions"]
    return frozenset(suffix for p in partitions for suffix in (p["outputs"].get("dnsSuffix"), p["outputs"].get("dualStackDnsSuffix"))
                     if suffix)


def emulator_endpoint(url: str | None) -> str | None:
    """The endpoint itself when it is not one of AWS's own (LocalStack, moto's server, a proxy the user
    named), else None. An endpoint under an AWS domain (a FIPS, dual-stack or VPC endpoint too) serves
    the real API Gateway, whose stages answer at https://{api}.execute-api.{region}.{domain}/{stage}."""
    if not url:
        return None
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return None if any(host == d or host.endswith("." + d) for d in aws_domains()) else url


@dataclass
class CallStats:
    """Every request botocore sent, by service and operation (retries count again)."""

    calls: Counter = field(default_factory=Counter)
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()   # calls are counted from many threads at once

    def record(self, service: str, operation: str) -> None:
        with self._lock:
            self.calls[(service, operation)] += 1

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def reads(self) -> int:
        return sum(n for (_, op), n in self.calls.items() if not is_mutating(op))

    @property
    def writes(self) -> int:
        return sum(n for (_, op), n in self.calls.items() if is_mutating(op))

    def mutating_calls(self) -> list[str]:
        return sorted(f"{svc}.{op}" for (svc, op), n in self.calls.items() if is_mutating(op) for _ in range(n))

    def reset(self) -> None:
        self.calls.clear()
        self.retries = 0


class Budgets:
    """One account's rate budgets as Limiter keeps them: budget -> the times of the calls it let through
    (sorted), and the lock that guards them."""

    HORIZON_S = 120.0   # calls older than this (before the call being placed) no longer bound it

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken: dict[str, list[float]] = {}


def _turn(times: list[float], at: float, rate: float, capacity: float) -> float:
    """How much later than `at` a call must go so that, with the calls at `times`, no stretch of time from a to
    b holds more than `capacity + rate * (b - a)` of them: the token bucket's promise, checked on every stretch
    around the call rather than on arrival order."""
    index = bisect.bisect_right(times, at)
    later = 0.0
    for first in range(index + 1):   # stretches from times[first] (or the call) ...
        start = times[first] if first < index else at
        for last in range(index - 1, len(times)):   # ... to the call (last < index) or times[last]
            end = at if last < index else times[last]
            count = (index - first) + 1 + max(0, last - index + 1)
            over = count - capacity - rate * (end - start)
            if over > 1e-9:
                later = max(later, over / rate)
    return later


class Limiter:
    """Keeps calls under AWS's documented control-plane rates (crudstack/quotas.py): one budget per quota, a
    token bucket of the quota's rate holding its burst (or one second's worth). A call that finds no token
    reserves the next one and sleeps until it is due, so calls from many threads queue up in order instead
    of being throttled by AWS and retried.

    Each budget keeps the times of the calls it let through, and a call goes at the earliest time, from its
    own, that keeps every stretch of time under the bucket's promise (crudstack.realistic.Bucket checks the
    same). So a call's turn depends on the times of the calls around it, not on which thread asked first:
    threads whose clocks are apart (crudstack.realistic.SimClock runs each thread at its own simulated time)
    get the same turns whatever order the threads are scheduled in, and a thread behind in simulated time is
    not queued after calls made later than its own time. On the wall clock, where calls ask in time order,
    this is the same as a token bucket that queues calls in order."""

    def __init__(self, *, clock: Callable[[], float], sleep: Callable[[float], None], budgets: "Budgets | None" = None):
        self.clock, self.sleep = clock, sleep
        # The account's budgets: a run's own, unless runs made one after another in one process (on one clock)
        # share them, as they share the account's rates: a second run starting at once would otherwise spend a
        # burst the first one has just spent.
        self.budgets = budgets or Budgets()
        self.waits: list[float] = []   # every sleep it made (tests tell them from retries' backoff)

    def acquire(self, service: str, operation: str, *, until: Callable[[], float | None] | None = None) -> None:
        """Wait for this call's turn; `until()`: a time no wait outlasts, looked at again while waiting (a run
        whose network is gone ends within its deadline, not after every queued call has had its turn)."""
        spent = budgets(service, operation)
        if not spent:
            return
        with self.budgets.lock:
            now = self.clock()
            taken = [(self.budgets.taken.setdefault(key, []), quota) for key, quota in spent]
            for times, _ in taken:
                del times[:bisect.bisect_left(times, now - Budgets.HORIZON_S)]
            # A call spends a token of every budget it counts against (its own and its service's shared one):
            # later until every one of them holds it.
            go = now
            for _ in range(10_000):
                later = max(_turn(times, go, quota.requests / quota.per_s, float(quota.burst or quota.requests))
                            for times, quota in taken)
                if not later:
                    break
                go += later + 1e-9
            for times, _ in taken:
                bisect.insort(times, go)
        # In slices, counted by what was slept (an injected sleep may not move the clock), looking at `until`
        # between them.
        total, waited = go - now, 0.0
        while waited < total:
            cap = until() if until is not None else None
            if cap is not None and self.clock() >= cap:
                return
            step = min(total - waited, self.SLICE_S)
            self.waits.append(step)
            self.sleep(step)
            waited += step

    SLICE_S = 0.25   # how often a long wait looks at `until` again


class Session:
    """What Aws needs of boto3.session.Session, its clients, on botocore alone: importing boto3 (s3transfer
    with it) added about 70 ms to every run's start-up, and boto3's own additions to a session are for its
    resources and S3 (boto3/session.py, _register_default_handlers), neither of which a run uses."""

    def __init__(self, region_name: str | None = None, aws_access_key_id: str | None = None,
                 aws_secret_access_key: str | None = None, aws_session_token: str | None = None):
        self._session = botocore.session.get_session()
        if aws_access_key_id or aws_secret_access_key or aws_session_token:
            self._session.set_credentials(aws_access_key_id, aws_secret_access_key, aws_session_token)
        if region_name:
            self._session.set_config_variable("region", region_name)
        self.region_name = region_name

    def client(self, service: str, **kwargs):
        return self._session.create_client(service, region_name=kwargs.pop("region_name", self.region_name), **kwargs)


class Aws:
    """Clients for one account/region/endpoint, with our retry policy and call counting."""

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        session: "Session | None" = None,
        deadline_s: float = 180,
        max_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wait_max_s: float = 8.0,
        clock: Clock | None = None,
        budgets: Budgets | None = None,
    ):
        # config.yaml's region, always: it wins over AWS_DEFAULT_REGION and the profile's region
        # (crudstack.cli.connect warns when those differ).
        self.session = session or Session(region_name=region)
        self.region = region
        self.endpoint_url = endpoint_url
        self.deadline_s = deadline_s
        # An optional cap on attempts; None (the default) leaves the deadline alone to decide.
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.wait_max_s = wait_max_s
        # Deadlines are measured on this clock; tests inject one that the injected sleep moves on,
        # so a model of AWS's delays runs in simulated seconds.
        self.clock: Clock = clock or WallClock()
        self.stats = CallStats()
        self._clients: dict[str, Any] = {}
        self._client_locks: dict[str, threading.Lock] = {}
        self._client_locks_lock = threading.Lock()
        self._hooks_lock = threading.Lock()
        self.prepare_at_first_call: tuple[str, ...] = ()   # services whose clients prepare() makes then
        self._hooks: list[tuple[str, Callable]] = []
        self._identity: dict | None = None   # sts:GetCallerIdentity's answer, asked for once
        self._identity_lock = threading.Lock()   # by the first of the threads that need it; the others wait for it
        self._thread = threading.local()   # each thread's last call: runs make calls from many threads
        self.on_retry: Callable[[str, BaseException, int], None] | None = None
        self._busy = 0                 # threads doing a run's work right now (crudstack.interrupt asks)
        self._busy_lock = threading.Lock()
        # When a call last found the endpoint unreachable and no answer has come since (None: the network is
        # fine). Every call shares that fate, so a lost network is given retry.deadline_s to come back counted
        # from then, by every call, those that start later or wait for their turn too.
        self._lost_at: float | None = None
        # Every call waits for its turn under AWS's documented rate (calls run many at once).
        self.limiter = Limiter(clock=lambda: self.clock(), sleep=lambda seconds: self.sleep(seconds), budgets=budgets)
        # Off only for an endpoint that throttles nothing (the local AWS on moto: crudstack.cli.connect).
        self.paced = True

    # -- clients -----------------------------------------------------------------------------
    def prepare(self, services: tuple[str, ...]) -> threading.Thread:
        """Make these services' clients in a thread of their own (botocore loads each one's model: tens of ms
        of CPU apiece) while the caller waits on something else: the first call's round trip, the local AWS
        starting. Join the thread to wait for them; client() waits for one being made meanwhile."""
        thread = threading.Thread(target=lambda: [self.client(service) for service in services],
                                  name="crudstack-clients", daemon=True)
        thread.start()
        return thread

    def client(self, service: str):
        if service not in self._clients:
            with self._client_locks_lock:
                lock = self._client_locks.setdefault(service, threading.Lock())
            with lock:   # two threads asking for a new service's client at once make one
                return self._client(service)
        return self._clients[service]

    def _client(self, service: str):
        if service not in self._clients:
            config = BotoConfig(
                region_name=self.region,
                retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity retries, not botocore
                connect_timeout=5,
                read_timeout=60,
                # A run has up to 16 changes (and a plan's reads) in flight at once, many on one client.
                max_pool_connections=32,
                user_agent_extra="crudstack",
            )
            kwargs = {"config": config}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            client = self.session.client(service, **kwargs)
            client.meta.events.register("before-call", self._count)
            client.meta.events.register("after-call", self._answered)
            client.meta.events.register("before-parameter-build", self._note_call)
            with self._hooks_lock:   # a hook registered meanwhile is either in the list now or put on it below
                for event, handler in self._hooks:
                    client.meta.events.register(event, handler)
                self._clients[service] = client
        return self._clients[service]

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def working(self) -> "_Working":
        """`with aws.working():` around a thread's share of a run."""
        return _Working(self)

    def register(self, event: str, handler: Callable) -> None:
        """Hook every client, present and future (tests use it to inject faults), clients being made in
        another thread (prepare) included."""
        with self._hooks_lock:
            self._hooks.append((event, handler))
            clients = list(self._clients.values())
        for client in clients:
            client.meta.events.register(event, handler)

    def _count(self, model, **_):
        service = model.service_model.service_name
        # A call waits for its turn however long that is (waiting is not retrying), but not for a network that
        # is gone: then its turn comes no later than the end of the wait given to the lost network.
        if self.paced:
            self.limiter.acquire(service, model.name, until=self._lost_network_ends)
        self.stats.record(service, model.name)

    def _lost_network_ends(self) -> float | None:
        lost_at = self._lost_at
        return None if lost_at is None else lost_at + self.deadline_s

    def _answered(self, **_):
        self._lost_at = None   # an answer came: the endpoint is reachable

    def _note_call(self, params, model, **_):
        self._thread.call = (model.name, params)
        self._thread.service = model.service_model.service_name

    @property
    def last_call(self) -> tuple[str, dict] | None:
        """(operation, its parameters) of this thread's last call: what an error was about."""
        return getattr(self._thread, "call", None)

    @property
    def last_service(self) -> str | None:
        """The service of last_call, e.g. "apigateway"."""
        return getattr(self._thread, "service", None)

    def last_target(self) -> str | None:
        """What the last call was about, e.g. "table demo-ItemsTable" (None if it named nothing)."""
        if self.last_call is None:
            return None
        params = self.last_call[1]
        for key, kind in TARGET_PARAMS:
            if isinstance(params.get(key), str):
                return f"{kind} {params[key]}"
        return None

    def caller_identity(self) -> dict:
        """Who the credentials are (Account, Arn, UserId): one sts:GetCallerIdentity call per run."""
        if self._identity is None:
            with self._identity_lock:
                if self._identity is None:
                    sts = self.client("sts")
                    if self.prepare_at_first_call:   # made while this first call's answer is awaited
                        self.prepare(self.prepare_at_first_call)
                    self._identity = self.call(sts.get_caller_identity)
        return self._identity

    @property
    def account_id(self) -> str:
        return self.caller_identity()["Account"]

    @property
    def partition(self) -> str:
        """aws, aws-cn or aws-us-gov: the one every ARN we write must name.

        Taken from the caller's own ARN (arn:PARTITION:sts::ACCOUNT:...), which is where AWS says
        which partition the account lives in; an ARN is never valid across partitions. Only an
        endpoint that answers without a well-formed ARN falls back to botocore's partition for the region.
        """
        arn = str(self.caller_identity().get("Arn") or "")
        parts = arn.split(":")
        if len(parts) >= 6 and parts[0] == "arn" and parts[1]:
            return parts[1]
        return partition_of_region(self.region)

    @property
    def dns_suffix(self) -> str:
        """The domain of this partition's endpoints, from botocore's data: amazonaws.com, amazonaws.com.cn, ..."""
        return dns_suffix(self.partition, self.region)

    # -- calls -------------------------------------------------------------------------------
    def retrying(self) -> Retrying:
        """Transient errors are retried with jittered backoff until the deadline (retry.deadline_s, or
        IAM_PROPAGATION_S for a role Lambda cannot assume yet); a throttled try waits at least as long as
        AWS's Retry-After or, without one, its operation's documented rate quota (crudstack/quotas.py)."""
        started = self.clock()

        def remaining(exc: BaseException | None) -> float:
            deadline, since = self.deadline_s, started
            if exc is not None and is_role_propagation(exc):
                deadline = max(deadline, IAM_PROPAGATION_S)
            if isinstance(exc, CONNECTION_ERRORS):
                if self._lost_at is None:
                    self._lost_at = self.clock()
                since = min(since, self._lost_at)
            return deadline - (self.clock() - since)

        def before_sleep(state: RetryCallState) -> None:
            self.stats.count_retry()
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying after %s (attempt %d)", exc, state.attempt_number)
            if self.on_retry and exc is not None:
                self.on_retry(getattr(state.fn, "__name__", "call"), exc, state.attempt_number)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception()
            # AWS's eventual consistency (a role not assumable yet, an update still running) clears by itself
            # within seconds: look again within a second rather than back off as from a throttle, so a
            # run ends soon after AWS is ready (the dependency chain, not the backoff, sets its length).
            pause = min(backoff(state), CONSISTENCY_WAIT_MAX_S) if is_eventual_consistency(exc) else backoff(state)
            # Never sleep past the deadline: the last attempt is made at it, not after it.
            return max(0.0, min(max(pause, self._least_wait(exc)), remaining(exc)))

        def stop(state: RetryCallState) -> bool:
            if self.max_attempts is not None and state.attempt_number >= self.max_attempts:
                return True
            exc = state.outcome.exception()
            left = remaining(exc)
            # AWS said when it will take the call again; a try at the deadline, before that, would be
            # refused just the same, so give up now.
            after = retry_after_s(exc)
            return left <= 0 or (after is not None and after > left)

        def give_up(state: RetryCallState):
            exc = state.outcome.exception()
            # What the user is told (foreign_errors): how long we kept trying before this error became final
            # (for a lost network, since it was first found lost: the wait every call shared).
            lost_at = self._lost_at if isinstance(exc, CONNECTION_ERRORS) else None
            self._thread.gave_up = (exc, state.attempt_number,
                                    self.clock() - (started if lost_at is None else min(started, lost_at)))
            raise exc

        backoff = wait_random_exponential(multiplier=0.2, max=self.wait_max_s)
        return Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(is_transient),
            sleep=self.sleep,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )

    def _least_wait(self, exc: BaseException) -> float:
        """The least time before the next try: what AWS asked for, else, when throttled, what the
        operation's rate quota allows (one DeleteRestApi every 30 s: retrying sooner is refused again)."""
        after = retry_after_s(exc)
        if after is not None:
            return after
        operation = getattr(exc, "operation_name", None)
        if is_throttling(exc) and self.last_call and self.last_call[0] == operation and self.last_service:
            quota = quota_for(self.last_service, operation)
            if quota is not None:
                return quota.interval_s
        return 0.0

    def call(self, operation: Callable[..., Any], **kwargs) -> Any:
        """Call a bound client method, retrying transient errors until the deadline."""
        return self.retrying()(operation, **kwargs)

    @contextlib.contextmanager
    def foreign_errors(self) -> Iterator[None]:
        """The one place a foreign error becomes ours (AwsCallFailed): around a thread's share of a run,
        in the thread that made the call, which is where its last call and retries are known."""
        try:
            yield
        except FOREIGN_ERRORS as exc:
            gave_up = getattr(self._thread, "gave_up", None)
            attempts, seconds = gave_up[1:] if gave_up and gave_up[0] is exc else (1, 0.0)
            operation = self.last_call[0] if self.last_call else None
            raise AwsCallFailed(exc, operation=operation, service=self.last_service, target=self.last_target(),
                                attempts=attempts, seconds=seconds) from exc

    def find(self, operation: Callable[..., Any], *, service: str, **kwargs) -> Any | None:
        """Like call, but the service's "not found" answer (NOT_FOUND) is None."""
        try:
            return self.call(operation, **kwargs)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND[service]:
                return None
            raise

    def look(self, service: str, operation: str, **kwargs) -> Any | None:
        """One call, not retried (the caller is a unit that is retried whole: calls.Once's check), or None
        when the service answers "not found"."""
        try:
            return getattr(self.client(service), operation)(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND[service]:
                return None
            raise

    # -- domain verbs: find_* answer None when there is no such thing -----------------------------------------
    def _find(self, service: str, operation: str, **kwargs) -> Any | None:
        return self.find(getattr(self.client(service), operation), service=service, **kwargs)

    def find_table(self, name: str) -> dict | None:
        """DescribeTable's Table."""
        found = self._find("dynamodb", "describe_table", TableName=name)
        return found["Table"] if found else None

    def find_table_tags(self, arn: str) -> list[dict] | None:
        """ListTagsOfResource's Tags. It may answer ResourceNotFoundException while a table is not ACTIVE
        yet (its documented errors: "or its status might not be ACTIVE"): None, no tags to show yet."""
        found = self._find("dynamodb", "list_tags_of_resource", ResourceArn=arn)
        return found.get("Tags") if found else None

    def find_role(self, name: str) -> dict | None:
        """GetRole's Role."""
        found = self._find("iam", "get_role", RoleName=name)
        return found["Role"] if found else None

    def find_role_policy(self, role: str, policy: str) -> dict | None:
        return self._find("iam", "get_role_policy", RoleName=role, PolicyName=policy)

    def find_function(self, name: str) -> dict | None:
        """GetFunction's whole answer (Configuration, Code, Tags)."""
        return self._find("lambda", "get_function", FunctionName=name)

    def find_function_configuration(self, name: str) -> dict | None:
        return self._find("lambda", "get_function_configuration", FunctionName=name)

    def find_function_policy(self, name: str) -> dict | None:
        """GetPolicy's answer: the function's resource policy (None when it has none)."""
        return self._find("lambda", "get_policy", FunctionName=name)

    def find_stage(self, api_id: str, stage: str) -> dict | None:
        return self._find("apigateway", "get_stage", restApiId=api_id, stageName=stage)

    def find_deployment(self, api_id: str, deployment_id: str) -> dict | None:
        return self._find("apigateway", "get_deployment", restApiId=api_id, deploymentId=deployment_id)

    def retry_unit(self, fn: Callable[[], Any]) -> Any:
        """Retry a whole find-or-create unit, so a retried create first looks again.

        Used where AWS does not de-duplicate by name (REST APIs, resources): if a
        create succeeded but its answer was lost, the retry finds it instead of
        creating a second one.
        """
        return self.retrying()(fn)

    def paginate(self, client, operation: str, key: str, **kwargs) -> list:
        """Every item of a paginated list call; a transient error retries the listing."""

        def all_pages() -> list:
            pages = client.get_paginator(operation).paginate(**kwargs)
            return [item for page in pages for item in page.get(key, [])]

        return self.call(all_pages)

    def wait_until(self, check: Callable[[], Any], *, what: str, timeout_s: float | None = None, interval_s: float = 0.5) -> Any:
        """Poll check() until it returns a truthy value (eventual consistency, status changes)."""
        timeout = timeout_s or self.deadline_s
        deadline = self.clock() + timeout
        attempt = 0
        while True:
            attempt += 1
            result = check()
            if result:
                return result
            left = deadline - self.clock()
            if left <= 0:
                raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
            if self.on_retry:
                self.on_retry(f"waiting for {what}", TimeoutError(what), attempt)
            # Soon after a change most states have already moved on: look again quickly, then every 0.75 s
            # (botocore's own waiters wait 5 to 20 s between looks, which would add that much to every wait).
            self.sleep(min(interval_s * attempt, POLL_MAX_S, left))


class _Working:
    def __init__(self, aws: Aws):
        self.aws = aws

    def __enter__(self) -> None:
        with self.aws._busy_lock:
            self.aws._busy += 1

    def __exit__(self, *exc) -> None:
        with self.aws._busy_lock:
            self.aws._busy -= 1
