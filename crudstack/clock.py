"""Time for a run: the Aws's clock, and running work at once in it (real or simulated time)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Seconds, for a run's deadlines and for its threads' timeline. WallClock is the real one;
    crudstack.realistic.SimClock is simulated time, where threads working at once each keep their own."""

    def __call__(self) -> float: ...

    def enter(self, at: float) -> None:
        """This thread's work starts at `at`."""

    def leave(self) -> float:
        """This thread's work is over: when it ended."""

    def advance_to(self, at: float) -> None:
        """The caller waited for work that ended at `at`."""


class WallClock:
    """Real time: every thread shares it, so entering, leaving and advancing change nothing."""

    def __call__(self) -> float:
        return time.monotonic()

    def enter(self, at: float) -> None:
        pass

    def leave(self) -> float:
        return time.monotonic()

    def advance_to(self, at: float) -> None:
        pass


def run_at(clock: Clock, at: float, work: Callable[[], Any]) -> tuple[Any, float]:
    """work() in this thread, starting at `at` on the clock: its answer and when it ended."""
    clock.enter(at)
    try:
        return work(), clock()
    finally:
        clock.leave()


FAN_WIDTH = 32   # the executor's MAX_IN_FLIGHT (16) twice: plans read more at once than changes write


def fan(aws, fn: Callable[[Any], Any], items: list) -> list:
    """fn over items in threads at once, answers in the items' order (and, on a simulated clock, at once
    in simulated time too). A foreign error becomes ours in the thread that made the call."""
    if len(items) < 2:
        with aws.foreign_errors():
            return [fn(item) for item in items]
    start = aws.clock()
    def one(item):
        with aws.working(), aws.foreign_errors():
            return run_at(aws.clock, start, lambda: fn(item))

    # As wide as a plan's widest round (17 alarms' tags): a narrower pool would read them in waves, one round
    # trip each; the AWS door's limiter keeps the calls under AWS's documented rates however many go at once.
    with ThreadPoolExecutor(max_workers=min(FAN_WIDTH, len(items))) as pool:
        answers = list(pool.map(one, items))
    aws.clock.advance_to(max(end for _, end in answers))
    return [answer for answer, _ in answers]
