"""The one door to AWS: clients, retries, not-found, call counting.

Steps call boto3 through `Aws.call(client.operation, ...)` and `Aws.find(...)`, so
that retry policy, "not found" and call accounting live here and nowhere else.
botocore's own retries are switched off: tenacity is our retry policy, and every
HTTP request botocore sends is one counted call.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

log = logging.getLogger("crudstack.aws")

# Error codes AWS uses for throttling and its own transient faults.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestThrottled", "RequestThrottledException", "SlowDown",
    "PriorRequestNotComplete", "TransactionInProgressException", "EC2ThrottledException", "BandwidthLimitExceeded",
})
SERVER_FAULT_CODES = frozenset({
    "InternalFailure", "InternalError", "InternalServerError", "InternalServerErrorException", "ServiceUnavailable",
    "ServiceUnavailableException", "ServiceException", "ServiceFailure", "RequestTimeout", "RequestTimeoutException",
})
# Messages that mark AWS's eventual consistency rather than a real problem.
EVENTUAL_CONSISTENCY = (
    ("InvalidParameterValueException", "cannot be assumed by Lambda"),   # IAM role not yet propagated
    ("InvalidParameterValueException", "role defined for the function cannot be assumed"),
    ("ResourceConflictException", "update is in progress"),             # Lambda update still running
    ("ResourceConflictException", "operation cannot be performed at this time"),
    ("ResourceInUseException", "still in use"),                         # DynamoDB table still CREATING/UPDATING
    ("ResourceInUseException", "being created"),
    ("ResourceInUseException", "being updated"),
    ("ConflictException", "concurrent"),                                # API Gateway concurrent modification
    ("ConflictException", "try again"),
)
CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, proxy and SSL errors
    # ConnectionClosedError, ReadTimeoutError and ResponseStreamingError derive from HTTPClientError,
    # not ConnectionError: the request may have been sent and its answer lost.
    botocore.exceptions.HTTPClientError,
)
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


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, dropped connections and eventual consistency: worth another try."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    code = error_code(exc) or ""
    if code in THROTTLING_CODES or code in SERVER_FAULT_CODES:
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500:
        return True
    message = error_message(exc).lower()
    return any(code == c and fragment.lower() in message for c, fragment in EVENTUAL_CONSISTENCY)


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


@dataclass
class CallStats:
    """Every request botocore sent, by service and operation (retries count again)."""

    calls: Counter = field(default_factory=Counter)
    retries: int = 0

    def record(self, service: str, operation: str) -> None:
        self.calls[(service, operation)] += 1

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


class Aws:
    """Clients for one account/region/endpoint, with our retry policy and call counting."""

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        deadline_s: float = 180,
        max_attempts: int = 12,
        sleep: Callable[[float], None] = time.sleep,
        wait_max_s: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.session = session or boto3.session.Session(region_name=region)
        self.region = region or self.session.region_name
        if not self.region:
            from crudstack.errors import ConfigError

            raise ConfigError(["region: no region in config.yaml nor in the AWS profile/environment; set region: us-east-1 (for example)"])
        self.endpoint_url = endpoint_url
        self.deadline_s = deadline_s
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.wait_max_s = wait_max_s
        # Deadlines are measured on this clock; tests inject one that the injected sleep moves on,
        # so a model of AWS's delays runs in simulated seconds.
        self.clock = clock
        self.stats = CallStats()
        self._clients: dict[str, Any] = {}
        self._hooks: list[tuple[str, Callable]] = []
        self._account_id: str | None = None
        self.last_call: tuple[str, dict] | None = None   # (operation, its parameters): what an error was about
        self.last_service: str | None = None              # botocore's name of the service of last_call
        self.on_retry: Callable[[str, BaseException, int], None] | None = None

    # -- clients -----------------------------------------------------------------------------
    def client(self, service: str):
        if service not in self._clients:
            config = BotoConfig(
                region_name=self.region,
                retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity retries, not botocore
                connect_timeout=5,
                read_timeout=60,
                user_agent_extra="crudstack",
            )
            kwargs = {"config": config}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            client = self.session.client(service, **kwargs)
            client.meta.events.register("before-call", self._count)
            client.meta.events.register("before-parameter-build", self._note_call)
            for event, handler in self._hooks:
                client.meta.events.register(event, handler)
            self._clients[service] = client
        return self._clients[service]

    def register(self, event: str, handler: Callable) -> None:
        """Hook every client, present and future (tests use it to inject faults)."""
        self._hooks.append((event, handler))
        for client in self._clients.values():
            client.meta.events.register(event, handler)

    def _count(self, model, **_):
        self.stats.record(model.service_model.service_name, model.name)

    def _note_call(self, params, model, **_):
        self.last_call = (model.name, params)
        self.last_service = model.service_model.service_name

    def last_target(self) -> str | None:
        """What the last call was about, e.g. "table demo-ItemsTable" (None if it named nothing)."""
        if self.last_call is None:
            return None
        params = self.last_call[1]
        for key, kind in TARGET_PARAMS:
            if isinstance(params.get(key), str):
                return f"{kind} {params[key]}"
        return None

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            sts = self.client("sts")
            self._account_id = self.call(sts.get_caller_identity)["Account"]
        return self._account_id

    # -- calls -------------------------------------------------------------------------------
    def retrying(self) -> Retrying:
        started = self.clock()

        def remaining() -> float:
            return self.deadline_s - (self.clock() - started)

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying after %s (attempt %d)", exc, state.attempt_number)
            if self.on_retry and exc is not None:
                self.on_retry(getattr(state.fn, "__name__", "call"), exc, state.attempt_number)

        def wait(state: RetryCallState) -> float:
            # Never sleep past the deadline: the last attempt is made at it, not after it.
            return max(0.0, min(backoff(state), remaining()))

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number >= self.max_attempts or remaining() <= 0

        def give_up(state: RetryCallState):
            exc = state.outcome.exception()
            # What the user is told: how long we kept trying before this error became final.
            exc.crudstack_attempts = state.attempt_number
            exc.crudstack_seconds = self.clock() - started
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

    def call(self, operation: Callable[..., Any], **kwargs) -> Any:
        """Call a bound client method, retrying transient errors until the deadline."""
        return self.retrying()(operation, **kwargs)

    def find(self, operation: Callable[..., Any], *, not_found: tuple[str, ...], **kwargs) -> Any | None:
        """Like call, but an AWS "not found" answer (one of the codes given) is None."""
        try:
            return self.call(operation, **kwargs)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in not_found:
                return None
            raise

    def delete(self, operation: Callable[..., Any], *, not_found: tuple[str, ...], **kwargs) -> bool:
        """Delete; a resource already gone counts as done. True if this call deleted it."""
        return self.find(operation, not_found=not_found, **kwargs) is not None

    def retry_unit(self, fn: Callable[[], Any]) -> Any:
        """Retry a whole find-or-create unit, so a retried create first looks again.

        Used where AWS does not de-duplicate by name (REST APIs, resources): if a
        create succeeded but its answer was lost, the retry finds it instead of
        creating a second one.
        """
        return self.retrying()(fn)

    def once(self, act: Callable[[], Any], *, done: Callable[[], bool]) -> Any:
        """A call that must not be repeated blindly: a retry first asks done() whether the first
        attempt, its answer lost, already did the work. (AWS refuses a second add_permission with
        the same statement id, and moto keeps both; moto answers a second delete_rest_api with 500.)
        act and done make raw client calls: this unit is what is retried."""
        tried = False

        def unit():
            nonlocal tried
            if tried and done():
                return None
            tried = True
            return act()

        return self.retry_unit(unit)

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
            self.sleep(min(interval_s * attempt, 5.0, left))
