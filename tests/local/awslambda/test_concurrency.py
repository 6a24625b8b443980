"""The concurrency gate alone (awslambda/concurrency.py): who runs, who waits, who is throttled.

Threads that wait are observed through the gate's own counts, never through sleeps, so nothing here
depends on timing; the deadlines that must pass are already in the past.
"""

from __future__ import annotations

import threading
import time

import pytest

from crudstack.local.awslambda.concurrency import Admission, ConcurrencyGate
from crudstack.local.awslambda.exceptions import RuntimeClosed

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
OTHER = "arn:aws:lambda:us-east-1:123456789012:function:g"
LATER = 60.0  # seconds: a deadline no test reaches


def deadline(seconds: float = LATER) -> float:
    return time.monotonic() + seconds


def wait_until(predicate, timeout: float = 10.0):
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError("timed out")
        time.sleep(0.005)


class Waiters:
    """acquire() in threads, in a known order: each starts only once the one before it is queued."""

    def __init__(self, gate: ConcurrencyGate, arn: str = ARN):
        self.gate, self.arn = gate, arn
        self.order: list[str] = []
        self.outcomes: dict[str, Admission] = {}
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, name: str, *, reserved: int | None = None, seconds: float = LATER) -> None:
        queued = self.gate.counts(self.arn)[1]

        def run():
            outcome = self.gate.acquire(self.arn, reserved=reserved, deadline=deadline(seconds))
            with self._lock:
                self.outcomes[name] = outcome
                if outcome is Admission.ADMITTED:
                    self.order.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)
        wait_until(lambda: self.gate.counts(self.arn)[1] == queued + 1 or name in self.outcomes)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)


def test_up_to_the_pool_size_invocations_are_admitted_at_once():
    gate = ConcurrencyGate(2)

    assert gate.acquire(ARN, reserved=None, deadline=deadline()) is Admission.ADMITTED
    assert gate.acquire(ARN, reserved=None, deadline=deadline()) is Admission.ADMITTED
    assert gate.acquire(OTHER, reserved=None, deadline=deadline()) is Admission.ADMITTED  # pools are per function
    assert gate.counts(ARN) == (2, 0)


def test_with_the_pool_busy_an_invocation_waits_and_gets_the_next_free_slot():
    gate = ConcurrencyGate(1)
    gate.acquire(ARN, reserved=None, deadline=deadline())
    waiters = Waiters(gate)

    waiters.start("second")
    assert gate.counts(ARN) == (1, 1) and waiters.outcomes == {}
    gate.release(ARN)
    waiters.join()

    assert waiters.outcomes == {"second": Admission.ADMITTED}
    assert gate.counts(ARN) == (1, 0), "the slot passed on: still one running"


def test_waiters_are_admitted_first_come_first_served_and_a_newcomer_cannot_overtake_them():
    gate = ConcurrencyGate(1)
    gate.acquire(ARN, reserved=None, deadline=deadline())
    waiters = Waiters(gate)
    for name in ("a", "b", "c"):
        waiters.start(name)

    for expected in (["a"], ["a", "b"], ["a", "b", "c"]):
        gate.release(ARN)
        # A newcomer arriving while the queue is not empty queues behind it, whatever the slot count.
        wait_until(lambda: waiters.order == expected)
    waiters.join()

    assert waiters.order == ["a", "b", "c"]
    assert gate.counts(ARN) == (1, 0)


def test_a_waiter_gives_up_at_its_deadline_and_leaves_the_queue():
    gate = ConcurrencyGate(1)
    gate.acquire(ARN, reserved=None, deadline=deadline())

    assert gate.acquire(ARN, reserved=None, deadline=deadline(0.05)) is Admission.WAITED_OUT
    assert gate.acquire(ARN, reserved=None, deadline=time.monotonic()) is Admission.WAITED_OUT
    assert gate.counts(ARN) == (1, 0)
    gate.release(ARN)
    assert gate.counts(ARN) == (0, 0), "nobody is left waiting for the slot"


def test_reserved_concurrency_throttles_the_next_invocation_at_once_even_with_workers_free():
    gate = ConcurrencyGate(10)
    assert [gate.acquire(ARN, reserved=2, deadline=deadline()) for _ in range(2)] == [Admission.ADMITTED] * 2

    assert gate.acquire(ARN, reserved=2, deadline=deadline()) is Admission.THROTTLED
    gate.release(ARN)
    assert gate.acquire(ARN, reserved=2, deadline=deadline()) is Admission.ADMITTED


def test_reserved_concurrency_above_the_pool_counts_the_waiting_invocations_too():
    gate = ConcurrencyGate(1)
    gate.acquire(ARN, reserved=2, deadline=deadline())
    waiters = Waiters(gate)
    waiters.start("second", reserved=2)

    # One running and one waiting make two concurrent invocations: the third is over the reservation.
    assert gate.acquire(ARN, reserved=2, deadline=deadline()) is Admission.THROTTLED
    gate.release(ARN)
    waiters.join()
    assert waiters.outcomes == {"second": Admission.ADMITTED}


def test_reserved_concurrency_of_zero_throttles_every_invocation():
    gate = ConcurrencyGate(10)

    assert gate.acquire(ARN, reserved=0, deadline=deadline()) is Admission.THROTTLED
    assert gate.counts(ARN) == (0, 0)


def test_closing_the_gate_wakes_every_waiter_with_runtime_closed():
    gate = ConcurrencyGate(1)
    gate.acquire(ARN, reserved=None, deadline=deadline())
    errors = []

    def wait():
        try:
            gate.acquire(ARN, reserved=None, deadline=deadline())
        except RuntimeClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until(lambda: gate.counts(ARN) == (1, 1))
    gate.close()
    thread.join(10)

    assert len(errors) == 1
    with pytest.raises(RuntimeClosed):
        gate.acquire(ARN, reserved=None, deadline=deadline())


def test_a_pool_of_no_workers_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyGate(0)
