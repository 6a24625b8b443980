"""How many invocations of a function run at once: the warm pool's size, reserved concurrency, and
the queue of invocations that wait for a worker.

AWS runs up to the account's concurrency (1,000 by default) of all functions at once; a function with
reserved concurrency N never runs more than N: "Reserved concurrency ... sets both the maximum and
minimum number of concurrent instances allocated to your function", and "To throttle a function, set
the reserved concurrency to zero" (Lambda Developer Guide, "Configuring reserved concurrency for a
function", https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). A synchronous
invocation beyond it is throttled at once: 429 TooManyRequestsException with Reason
ReservedFunctionConcurrentInvocationLimitExceeded (the ThrottleReason values of botocore's lambda
model; docs.aws.amazon.com/botocore/latest/reference/services/lambda/client/exceptions/TooManyRequestsException.html).

A machine cannot hold 1,000 worker processes, so the local runtime does not emulate the account's
limit: it keeps at most `pool_size` workers (local.lambda_concurrency) of one function busy, and an
invocation that finds all of them busy waits for one, first come first served, until its caller's
deadline (API Gateway's 29 s integration timeout; the function's timeout for the Invoke API). Only
then is it refused (WAITED_OUT). Where AWS would throttle, reserved concurrency, the runtime throttles
too, and does not wait: an invocation that would be the function's (N+1)th, running or waiting,
is THROTTLED.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections import deque

from crudstack.local.awslambda.exceptions import RuntimeClosed
from crudstack.local.awslambda.models import InvokeResult


class Admission(enum.Enum):
    ADMITTED = "admitted"        # run it; call release() when it is over
    THROTTLED = "throttled"      # over the function's reserved concurrency: refused at once
    WAITED_OUT = "waited_out"    # no worker became free before the caller's deadline


class _Waiter:
    __slots__ = ("admitted", "event")

    def __init__(self) -> None:
        self.admitted = False
        self.event = threading.Event()


class ConcurrencyGate:
    """Admits invocations per function (keyed by its unqualified ARN). Thread-safe.

    A slot freed by release() goes straight to the oldest waiter, so a newcomer can never overtake
    the queue (no barging), and waiting is fair whatever the thread scheduler does."""

    def __init__(self, pool_size: int):
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[_Waiter]] = {}
        self._closed = False

    def acquire(self, function_arn: str, *, reserved: int | None, deadline: float) -> Admission:
        """ADMITTED, THROTTLED or WAITED_OUT (deadline: a time.monotonic() value). Raises
        RuntimeClosed if the gate is closed before or while it waits."""
        with self._lock:
            if self._closed:
                raise RuntimeClosed("the Lambda runtime is shut down")
            running = self._running.get(function_arn, 0)
            queue = self._waiting.get(function_arn)
            waiting = len(queue) if queue else 0
            if reserved is not None and running + waiting >= reserved:
                return Admission.THROTTLED
            if running < self.pool_size and not waiting:
                self._running[function_arn] = running + 1
                return Admission.ADMITTED
            if time.monotonic() >= deadline:
                return Admission.WAITED_OUT
            waiter = _Waiter()
            self._waiting.setdefault(function_arn, deque()).append(waiter)
        waiter.event.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if waiter.admitted:
                return Admission.ADMITTED
            queue = self._waiting.get(function_arn)
            if queue is not None:
                try:
                    queue.remove(waiter)
                except ValueError:
                    pass
                if not queue:
                    del self._waiting[function_arn]
            if self._closed:
                raise RuntimeClosed("the Lambda runtime is shut down")
            return Admission.WAITED_OUT

    def release(self, function_arn: str) -> None:
        """One admitted invocation is over: its slot goes to the oldest waiter, if any."""
        with self._lock:
            queue = self._waiting.get(function_arn)
            if queue:
                waiter = queue.popleft()
                if not queue:
                    del self._waiting[function_arn]
                waiter.admitted = True  # the slot passes on: the running count stays
                waiter.event.set()
                return
            left = self._running.get(function_arn, 0) - 1
            if left > 0:
                self._running[function_arn] = left
            else:
                self._running.pop(function_arn, None)

    def counts(self, function_arn: str) -> tuple[int, int]:
        """(running, waiting) for one function: for the log, tests and diagnostics."""
        with self._lock:
            return self._running.get(function_arn, 0), len(self._waiting.get(function_arn, ()))

    def close(self) -> None:
        """Refuse new invocations; every waiter wakes up with RuntimeClosed."""
        with self._lock:
            self._closed = True
            waiters = [waiter for queue in self._waiting.values() for waiter in queue]
            self._waiting.clear()  # a slot released from now on is handed to nobody
        for waiter in waiters:
            waiter.event.set()


def refusal(admission: Admission, request_id: str, version: str) -> InvokeResult:
    """The throttled result of an invocation that was not admitted: the Invoke API answers it 429
    TooManyRequestsException with this body, API Gateway 500 (or 504 when it waited out)."""
    reason = ("ReservedFunctionConcurrentInvocationLimitExceeded" if admission is Admission.THROTTLED
              else "ConcurrentInvocationLimitExceeded")
    return InvokeResult(payload=json.dumps({"Reason": reason, "Type": "User", "message": "Rate Exceeded."}).encode(),
                        function_error=None, timed_out=False, throttled=True, duration_ms=0.0, request_id=request_id,
                        executed_version=version, throttle_reason=reason, waited_out=admission is Admission.WAITED_OUT)
