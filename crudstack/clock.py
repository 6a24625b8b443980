"""Time for a run: the Aws's clock, and running work at once in it (real or simulated time)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class SimulatedTime:
    """Runs work in a thread at the right simulated time when the Aws's clock is simulated
    (crudstack.realistic.SimClock); nothing at all on a real clock."""

    def __init__(self, clock):
        self.clock = clock
        self.simulated = hasattr(clock, "enter")

    def run(self, at: float, work: Callable[[], Any]) -> tuple[Any, float]:
        if not self.simulated:
            return work(), self.clock()
        self.clock.enter(at)
        try:
            return work(), self.clock()
        finally:
            self.clock.leave()

    def advance_to(self, at: float) -> None:
        if self.simulated:
            self.clock.advance_to(at)


def fan(aws, fn: Callable[[Any], Any], items: list) -> list:
    """fn over items in threads at once, answers in the items' order (and, on a simulated clock, at once
    in simulated time too). A foreign error becomes ours in the thread that made the call."""
    if len(items) < 2:
        with aws.foreign_errors():
            return [fn(item) for item in items]
    time_ = SimulatedTime(aws.clock)
    start = aws.clock()
    def one(item):
        with aws.working(), aws.foreign_errors():
            return time_.run(start, lambda: fn(item))

    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        answers = list(pool.map(one, items))
    time_.advance_to(max(end for _, end in answers))
    return [answer for answer, _ in answers]
