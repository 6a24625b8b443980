"""Throttling and quotas: token buckets per stage and per API key, request counts per key and period.

API Gateway throttles with the token bucket algorithm, a token per request: the bucket holds at most
`burst` tokens and refills at `rate` tokens a second; a request finding it empty is answered 429
(docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html). The
settings apply in this order there: a usage plan's per-client limits, then the stage's per-method
limits (methodSettings), then the account's and the Region's (not modelled here: locally they would
only ever slow a test down). A usage plan's quota counts a key's requests in a DAY, WEEK or MONTH
(docs.aws.amazon.com/apigateway/latest/api/API_QuotaSettings.html).

All state is in memory (it starts full after a restart, as if the bucket had been idle) and every
method takes the lock, so the server's request threads share it safely. The clock is injected:
tests move a fake one instead of sleeping.
"""

from __future__ import annotations

import calendar
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable

Clock = Callable[[], float]


@dataclass(frozen=True)
class ThrottleLimits:
    """rate: tokens added a second; burst: the bucket's size."""

    rate: float
    burst: int


@dataclass(frozen=True)
class QuotaLimits:
    limit: int
    period: str          # DAY | WEEK | MONTH
    offset: int = 0      # requests subtracted from the limit in the first period (API_QuotaSettings)


class _Bucket:
    __slots__ = ("limits", "tokens", "updated")

    def __init__(self, limits: ThrottleLimits, now: float):
        self.limits = limits
        self.tokens = float(limits.burst)   # a bucket nobody used yet is full
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limits.burst), self.tokens + elapsed * self.limits.rate)
        self.updated = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def period_start(period: str, now: float) -> float:
    """The start (epoch seconds, UTC) of the quota period `now` falls in. A WEEK starts on Sunday, as
    the API reference described QuotaSettings' weeks (an offset of 0 "starts on Sunday")."""
    day = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "WEEK":
        day -= dt.timedelta(days=(day.weekday() + 1) % 7)   # Monday is 0 in Python: back to Sunday
    elif period == "MONTH":
        day = day.replace(day=1)
    elif period != "DAY":
        raise ValueError(f"quota period {period!r} is not DAY, WEEK or MONTH")
    return float(calendar.timegm(day.timetuple()))


class _Quota:
    __slots__ = ("first_period", "period", "used")

    def __init__(self, first_period: float):
        self.first_period = first_period
        self.period = first_period
        self.used = 0


class ThrottleState:
    """Token buckets and quota counters, each under a key the caller chooses (stage, plan + API key)."""

    def __init__(self, clock: Clock = time.monotonic, wall_clock: Clock = time.time):
        # Buckets refill on a monotonic clock (a wall-clock jump must not empty or fill them);
        # quota periods are calendar periods, so they follow the wall clock.
        self._clock = clock
        self._wall_clock = wall_clock
        self._buckets: dict[Hashable, _Bucket] = {}
        self._quotas: dict[Hashable, _Quota] = {}
        self._lock = threading.Lock()

    def take(self, key: Hashable, limits: ThrottleLimits) -> bool:
        """One token from the bucket `key`; False (-> 429 Too Many Requests) if it is empty."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(limits, now)
            elif bucket.limits != limits:
                # New settings (update-stage, update-usage-plan) take effect at once; tokens already
                # in the bucket are kept, up to its new size.
                bucket.refill(now)
                bucket.limits = limits
                bucket.tokens = min(bucket.tokens, float(limits.burst))
            return bucket.take(now)

    def count(self, key: Hashable, quota: QuotaLimits) -> bool:
        """Count one request against the quota `key`; False (-> 429 Limit Exceeded) once the period's
        limit is used up. A refused request is not counted."""
        now = self._wall_clock()
        start = period_start(quota.period, now)
        with self._lock:
            state = self._quotas.get(key)
            if state is None:
                state = self._quotas[key] = _Quota(start)
            if start != state.period:
                state.period, state.used = start, 0
            limit = quota.limit - (quota.offset if state.period == state.first_period else 0)
            if state.used >= limit:
                return False
            state.used += 1
            return True

    def used(self, key: Hashable) -> int:
        with self._lock:
            state = self._quotas.get(key)
            return state.used if state is not None else 0
