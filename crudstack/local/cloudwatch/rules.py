"""An alarm's decision from its metric's datapoints, as CloudWatch makes it (pure: tested alone).

How a decision is made (CloudWatch's rules, docs "Evaluating an alarm"):

- the metric (namespace, name, exactly these dimensions, and the unit when the alarm has one)
  is cut into periods aligned on multiples of Period; the last `EvaluationPeriods` complete
  periods are the evaluation range, each one a datapoint: the Statistic (SampleCount, Average,
  Sum, Minimum, Maximum) or ExtendedStatistic pNN of the values in it, or missing;
- ALARM when at least `DatapointsToAlarm` (default: EvaluationPeriods) datapoints breach the
  threshold under the comparison operator, otherwise OK;
- missing datapoints per TreatMissingData: breaching, notBreaching, ignore (an all-missing range
  keeps the state) or missing (the default: an all-missing range is INSUFFICIENT_DATA);
- a percentile with fewer than 10/(1 - p) samples keeps the state when
  EvaluateLowSampleCountPercentile is "ignore".

Metric-math and composite alarms are not evaluated locally (their state stays as set).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

OPERATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
# Late metrics: a period is evaluated this long after it ends (the runtime flushes every 0.2 s,
# the gateway every second), at most 5 s, at least 1 s.
MAX_SETTLE_S = 5.0


# --------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlarmSpec:
    name: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str | None
    extended_statistic: str | None
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str
    unit: str | None = None
    low_sample_percentile: str = "evaluate"

    @classmethod
    def from_moto(cls, alarm: Any) -> "AlarmSpec":
        return cls(
            name=alarm.name, namespace=alarm.namespace, metric_name=alarm.metric_name,
            dimensions=tuple(sorted((d.name, d.value) for d in alarm.dimensions)),
            statistic=alarm.statistic, extended_statistic=alarm.extended_statistic, period=int(alarm.period),
            evaluation_periods=int(alarm.evaluation_periods),
            datapoints_to_alarm=int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
            threshold=float(alarm.threshold), comparison=alarm.comparison_operator,
            treat_missing=alarm.treat_missing_data or "missing", unit=alarm.unit,
            low_sample_percentile=alarm.evaluate_low_sample_count_percentile or "evaluate",
        )

    def unsupported(self) -> str | None:
        """Why this alarm cannot be evaluated locally, or None."""
        if self.comparison not in OPERATORS:
            return f"comparison operator {self.comparison}"
        if self.extended_statistic:
            if _percentile(self.extended_statistic) is None:
                return f"extended statistic {self.extended_statistic} (only pNN is evaluated locally)"
        elif self.statistic not in STATISTICS:
            return f"statistic {self.statistic}"
        return None


@dataclass(frozen=True)
class Samples:
    """What one period holds: single values and statistic sets (sum, min, max, count)."""

    values: tuple[float, ...] = ()
    sets: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def count(self) -> float:
        return len(self.values) + sum(s[3] for s in self.sets)


@dataclass(frozen=True)
class Datapoint:
    start: float         # the period's start, seconds since the epoch
    value: float | None  # None: missing
    samples: float


@dataclass(frozen=True)
class Decision:
    state: str
    reason: str
    reason_data: dict[str, Any]


def _percentile(name: str) -> float | None:
    if not name.startswith("p"):
        return None
    try:
        value = float(name[1:])
    except ValueError:
        return None
    return value if 0 < value <= 100 else None


def statistic(spec: AlarmSpec, samples: Samples) -> float | None:
    """The alarm's statistic over one period's samples; None when there is nothing to compute it from."""
    if spec.extended_statistic:
        values = sorted(samples.values)  # statistic sets carry no distribution
        if not values:
            return None
        rank = math.ceil(_percentile(spec.extended_statistic) / 100 * len(values))  # nearest rank
        return values[max(rank, 1) - 1]
    count = samples.count
    if count == 0:
        return None
    total = sum(samples.values) + sum(s[0] for s in samples.sets)
    if spec.statistic == "SampleCount":
        return float(count)
    if spec.statistic == "Sum":
        return total
    if spec.statistic == "Average":
        return total / count
    if spec.statistic == "Minimum":
        return min(list(samples.values) + [s[1] for s in samples.sets])
    return max(list(samples.values) + [s[2] for s in samples.sets])


def evaluate(spec: AlarmSpec, points: list[Datapoint], current: str, now: float) -> Decision | None:
    """The state the alarm should be in, given its evaluation range (oldest first); None: keep it."""
    compare, phrase = OPERATORS[spec.comparison]
    n, m = spec.evaluation_periods, spec.datapoints_to_alarm
    present = [p for p in points if p.value is not None]
    if spec.extended_statistic and spec.low_sample_percentile == "ignore":
        needed = 10 / (1 - min(_percentile(spec.extended_statistic), 99.999) / 100)
        if any(p.samples < needed for p in present):
            return None
    breaching = [p for p in present if compare(p.value, spec.threshold)]
    missing = n - len(present)
    treat = spec.treat_missing
    data = _reason_data(spec, points, now)
    if not present and treat in ("missing", "ignore"):
        if treat == "ignore":
            return None
        return Decision("INSUFFICIENT_DATA", f"Insufficient Data: {_count(n, 'datapoint')} {_was(n)} unknown.", data)
    bad = len(breaching) + (missing if treat == "breaching" else 0)
    state = "ALARM" if bad >= m else "OK"
    if not present:
        label = "Breaching" if treat == "breaching" else "NonBreaching"
        reason = (f"Threshold Crossed: no datapoints were received for {_count(n, 'period')} and "
                  f"{_count(n, 'missing datapoint')} {_was(n)} treated as [{label}].")
        return Decision(state, reason, data)
    shown = sorted(present, key=lambda p: p.start, reverse=True)
    listed = ", ".join(f"{p.value!r} ({_short_time(p.start)})" for p in shown)
    counted = len(breaching) if state == "ALARM" else len(present) - len(breaching)
    negation = "" if state == "ALARM" else "not "
    reason = (f"Threshold Crossed: {counted} out of the last {n} datapoints [{listed}] "
              f"{_was(counted)} {negation}{phrase} the threshold ({spec.threshold!r}) "
              f"(minimum {_count(m, 'datapoint')} for {current} -> {state} transition).")
    if missing and treat in ("breaching", "notBreaching"):
        label = "Breaching" if treat == "breaching" else "NonBreaching"
        reason = reason[:-1] + f"; {_count(missing, 'missing datapoint')} treated as [{label}]."
    return Decision(state, reason, data)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _was(number: int) -> str:
    return "was" if number == 1 else "were"


def _short_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def iso_time(epoch: float) -> str:
    """CloudWatch's timestamps in notifications: 2024-06-11T10:00:00.000+0000."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _reason_data(spec: AlarmSpec, points: list[Datapoint], now: float) -> dict[str, Any]:
    present = sorted((p for p in points if p.value is not None), key=lambda p: p.start, reverse=True)
    data: dict[str, Any] = {"version": "1.0", "queryDate": iso_time(now),
                            "startDate": iso_time(points[0].start) if points else iso_time(now)}
    if spec.extended_statistic:
        data["extendedStatistic"] = spec.extended_statistic
    else:
        data["statistic"] = spec.statistic
    if spec.unit:
        data["unit"] = spec.unit
    data.update(period=spec.period, recentDatapoints=[p.value for p in present], threshold=spec.threshold,
                evaluatedDatapoints=[{"timestamp": iso_time(p.start), "sampleCount": float(p.samples), "value": p.value}
                                     for p in present])
    return data


# --------------------------------------------------------------------------------------------
# Reading the local metrics
# --------------------------------------------------------------------------------------------

def epoch(timestamp: dt.datetime) -> float:
    if timestamp.tzinfo is None:  # moto keeps naive UTC
        timestamp = timestamp.replace(tzinfo=dt.timezone.utc)
    return timestamp.timestamp()


def settle_delay(period: int) -> float:
    return min(MAX_SETTLE_S, max(1.0, period * 0.2))


def evaluation_range(spec: AlarmSpec, now: float) -> tuple[float, float]:
    """[start, end) of the last EvaluationPeriods complete periods at `now`."""
    end = math.floor((now - settle_delay(spec.period)) / spec.period) * spec.period
    return end - spec.evaluation_periods * spec.period, end


def collect(metric_data: list, specs: Iterable[AlarmSpec], now: float) -> dict[AlarmSpec, list[Datapoint]]:
    """Each alarm's datapoints over its evaluation range, from moto's metric_data, read once backwards."""
    specs = list(specs)
    if not specs:
        return {}
    ranges = {spec: evaluation_range(spec, now) for spec in specs}
    oldest = min(start for start, _ in ranges.values())
    wanted: dict[tuple, list[AlarmSpec]] = {}
    for spec in specs:
        wanted.setdefault((spec.namespace, spec.metric_name, spec.dimensions), []).append(spec)
    buckets: dict[AlarmSpec, dict[float, list]] = {spec: {} for spec in specs}
    # metric_data grows at the end in arrival order, so the scan goes backwards and stops once it
    # meets only old data: a datum that arrives more than 5 minutes behind its timestamp, behind 256
    # older ones, is not evaluated (CloudWatch too evaluates recent data only).
    old_in_a_row = 0
    for index in range(len(metric_data) - 1, -1, -1):
        datum = metric_data[index]
        when = epoch(datum.timestamp)
        if when < oldest - 300:
            old_in_a_row += 1
            if old_in_a_row >= 256:
                break
            continue
        old_in_a_row = 0
        key = (datum.namespace, datum.name, tuple(sorted((d.name, d.value) for d in datum.dimensions)))
        for spec in wanted.get(key, ()):
            start, end = ranges[spec]
            if not (start <= when < end) or (spec.unit and datum.unit not in (None, spec.unit)):
                continue
            period_start = start + math.floor((when - start) / spec.period) * spec.period
            buckets[spec].setdefault(period_start, []).append(datum)
    result = {}
    for spec in specs:
        start, _ = ranges[spec]
        points = []
        for i in range(spec.evaluation_periods):
            period_start = start + i * spec.period
            samples = _samples(buckets[spec].get(period_start, ()))
            points.append(Datapoint(period_start, statistic(spec, samples), samples.count))
        result[spec] = points
    return result


def _samples(data: Iterable[Any]) -> Samples:
    values, sets = [], []
    for datum in data:
        if hasattr(datum, "value"):
            values.append(float(datum.value))
        else:
            sets.append((float(datum.sum), float(datum.min), float(datum.max), float(datum.sample_count)))
    return Samples(tuple(values), tuple(sets))
