"""CloudWatch alarms that really fire in the local AWS.

moto stores alarms but never evaluates them, starts them in OK, keeps no history for
DescribeAlarmHistory and sends no notification. This module adds, as CloudWatch does:

    evaluate             one alarm's decision from its datapoints (pure: tested alone)
    AlarmEvaluator       a thread that, when each alarm's period ends, reads the local metrics
                         and sets the alarm's state when the decision differs
    install_extensions   moto's CloudWatch, extended: new alarms start INSUFFICIENT_DATA, an
                         update keeps the state, every change is in the alarm history
                         (DescribeAlarmHistory), and each state change publishes CloudWatch's
                         notification to the alarm's actions for the new state (AlarmActions,
                         OKActions, InsufficientDataActions) through the local SNS

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
import functools
import json
import logging
import math
import threading
import time
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
HISTORY_LIMIT = 10_000


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

    @property
    def statistic_label(self) -> str:
        return self.extended_statistic or self.statistic or ""

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

def _epoch(timestamp: dt.datetime) -> float:
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
        when = _epoch(datum.timestamp)
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


# --------------------------------------------------------------------------------------------
# The evaluator thread
# --------------------------------------------------------------------------------------------

def set_alarm_state(account: str, region: str, alarm: str, reason: str, reason_data: str, state: str) -> None:
    """The state change itself: moto's SetAlarmState (history and notifications follow, see install_extensions)."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account][region]
    if alarm in backend.alarms:  # deleted between the decision and now: nothing to do
        backend.set_alarm_state(alarm, reason, reason_data, state)


class AlarmEvaluator:
    """Evaluates every metric alarm of every account and region once each of its periods ends.

    apply: runs a state change; the server passes the durable state's journaled `apply`, so a
    change (and what it published) survives a restart.
    """

    def __init__(self, apply: Callable[..., Any] | None = None, interval: float = 1.0, clock: Callable[[], float] = time.time):
        self._apply = apply or (lambda name, **args: set_alarm_state(**args))
        self._interval = interval
        self._clock = clock
        self._evaluated: dict[tuple, float] = {}  # (account, region, alarm, configured at) -> range end
        self._reported: set[tuple] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "AlarmEvaluator":
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception:
                log.exception("alarm evaluation failed")

    def tick(self) -> int:
        """Evaluate the alarms whose period has ended since they were last evaluated; returns how many changed."""
        from moto.cloudwatch.models import cloudwatch_backends
        from moto.core.base_backend import backend_lock

        now = self._clock()
        with backend_lock:
            backends = list(cloudwatch_backends.iter_backends())
        changed = 0
        for account, region, backend in backends:
            due = {}
            for alarm in list(backend.alarms.values()):
                spec = self._spec(account, region, alarm)
                if spec is None:
                    continue
                key = (account, region, alarm.name, alarm.configuration_updated_timestamp)
                end = evaluation_range(spec, now)[1]
                if self._evaluated.get(key, -math.inf) < end:
                    due[spec] = (alarm, key, end)
            if not due:
                continue
            points = collect(backend.metric_data, due, now)
            for spec, (alarm, key, end) in due.items():
                self._evaluated[key] = end
                decision = evaluate(spec, points[spec], alarm.state_value, now)
                if decision is None or decision.state == alarm.state_value:
                    continue
                log.info("alarm %s: %s -> %s: %s", alarm.name, alarm.state_value, decision.state, decision.reason)
                self._apply("cloudwatch.set_alarm_state", account=account, region=region, alarm=alarm.name,
                            reason=decision.reason, reason_data=json.dumps(decision.reason_data), state=decision.state)
                changed += 1
        return changed

    def _spec(self, account: str, region: str, alarm: Any) -> AlarmSpec | None:
        if alarm.rule is not None or alarm.metric_data_queries or not alarm.metric_name:
            why = "composite and metric-math alarms are not evaluated locally"
        else:
            spec = AlarmSpec.from_moto(alarm)
            why = spec.unsupported()
            if why is None:
                return spec
        if (account, region, alarm.name) not in self._reported:
            self._reported.add((account, region, alarm.name))
            log.warning("alarm %s is not evaluated: %s", alarm.name, why)
        return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# Notifications: CloudWatch's message, published to the alarm's actions
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def region_description(region: str) -> str:
    """'US East (N. Virginia)' for us-east-1, as CloudWatch names regions in its notifications."""
    import botocore.loaders

    for partition in botocore.loaders.create_loader().load_data("endpoints")["partitions"]:
        described = partition.get("regions", {}).get(region, {}).get("description")
        if described:
            return described
    return region


def _account_of(alarm: Any) -> str:
    return alarm.alarm_arn.split(":")[4]


def notification(alarm: Any, old_state: str, at: float) -> tuple[str, str, str]:
    """(subject, JSON message, e-mail text) CloudWatch publishes for the alarm's latest state change."""
    region = region_description(alarm.region_name)
    new_state = alarm.state_value
    dimensions = [{"value": d.value, "name": d.name} for d in alarm.dimensions]
    trigger: dict[str, Any] = {"MetricName": alarm.metric_name, "Namespace": alarm.namespace,
                               "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic"}
    if alarm.extended_statistic:
        trigger["ExtendedStatistic"] = alarm.extended_statistic
    else:
        trigger["Statistic"] = (alarm.statistic or "").upper()
    trigger.update({"Unit": alarm.unit, "Dimensions": dimensions, "Period": alarm.period,
                    "EvaluationPeriods": alarm.evaluation_periods,
                    "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
                    "ComparisonOperator": alarm.comparison_operator, "Threshold": alarm.threshold,
                    "TreatMissingData": alarm.treat_missing_data or "",
                    "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or ""})
    message = {
        "AlarmName": alarm.name, "AlarmDescription": alarm.description, "AWSAccountId": _account_of(alarm),
        "AlarmConfigurationUpdatedTimestamp": iso_time(_epoch(alarm.configuration_updated_timestamp)),
        "NewStateValue": new_state, "NewStateReason": alarm.state_reason, "StateChangeTime": iso_time(at),
        "Region": region, "AlarmArn": alarm.alarm_arn, "OldStateValue": old_state,
        "OKActions": list(alarm.ok_actions), "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions), "Trigger": trigger,
    }
    subject = f'{new_state}: "{alarm.name}" in {region}'
    if len(subject) > 100:  # SNS refuses longer subjects
        subject = subject[:97] + "..."
    when = dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%A %d %B, %Y %H:%M:%S UTC")
    statistic_line = alarm.extended_statistic or alarm.statistic
    dims = ", ".join(f"{d.name} = {d.value}" for d in alarm.dimensions)
    phrase = OPERATORS.get(alarm.comparison_operator, (None, alarm.comparison_operator))[1]
    text = "\n".join([
        f'You are receiving this email because your Amazon CloudWatch Alarm "{alarm.name}" in the {region} region '
        f'has entered the {new_state} state, because "{alarm.state_reason}" at "{when}".',
        "",
        "Alarm Details:",
        f"- Name:                       {alarm.name}",
        f"- Description:                {alarm.description or ''}",
        f"- State Change:               {old_state} -> {new_state}",
        f"- Reason for State Change:    {alarm.state_reason}",
        f"- Timestamp:                  {when}",
        f"- AWS Account:                {_account_of(alarm)}",
        f"- Alarm Arn:                  {alarm.alarm_arn}",
        "",
        "Threshold:",
        f"- The alarm is in the ALARM state when the metric is {phrase} {alarm.threshold} for at least "
        f"{alarm.datapoints_to_alarm or alarm.evaluation_periods} of the last {alarm.evaluation_periods} "
        f"period(s) of {alarm.period} seconds.",
        "",
        "Monitored Metric:",
        f"- MetricNamespace:            {alarm.namespace}",
        f"- MetricName:                 {alarm.metric_name}",
        f"- Dimensions:                 [{dims}]",
        f"- Period:                     {alarm.period} seconds",
        f"- Statistic:                  {statistic_line}",
        f"- Unit:                       {alarm.unit or 'not specified'}",
        f"- TreatMissingData:           {alarm.treat_missing_data or 'missing'}",
        "",
        "State Change Actions:",
        f"- OK: [{', '.join(alarm.ok_actions)}]",
        f"- ALARM: [{', '.join(alarm.alarm_actions)}]",
        f"- INSUFFICIENT_DATA: [{', '.join(alarm.insufficient_data_actions)}]",
    ])
    return subject, json.dumps(message), text


# --------------------------------------------------------------------------------------------
# moto's CloudWatch, extended
# --------------------------------------------------------------------------------------------

def _history(backend: Any) -> list[dict[str, Any]]:
    history = backend.__dict__.get("crudstack_alarm_history")
    if history is None:
        history = backend.crudstack_alarm_history = []
    return history


def _record(backend: Any, alarm: Any, kind: str, summary: str, data: dict[str, Any], when: dt.datetime) -> None:
    history = _history(backend)
    history.append({"AlarmName": alarm.name, "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
                    "Timestamp": when, "HistoryItemType": kind, "HistorySummary": summary,
                    "HistoryData": json.dumps(data)})
    if len(history) > HISTORY_LIMIT:
        del history[: len(history) - HISTORY_LIMIT]


def _configuration(alarm: Any) -> dict[str, Any]:
    return {"alarmName": alarm.name, "alarmArn": alarm.alarm_arn, "namespace": alarm.namespace,
            "metricName": alarm.metric_name, "dimensions": [{"name": d.name, "value": d.value} for d in alarm.dimensions],
            "statistic": alarm.statistic, "extendedStatistic": alarm.extended_statistic, "period": alarm.period,
            "evaluationPeriods": alarm.evaluation_periods, "datapointsToAlarm": alarm.datapoints_to_alarm,
            "threshold": alarm.threshold, "comparisonOperator": alarm.comparison_operator,
            "treatMissingData": alarm.treat_missing_data, "actionsEnabled": alarm.actions_enabled,
            "alarmActions": list(alarm.alarm_actions), "okActions": list(alarm.ok_actions),
            "insufficientDataActions": list(alarm.insufficient_data_actions)}


def _backend_of(alarm: Any) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[_account_of(alarm)][alarm.region_name]


def _publish_actions(alarm: Any, old_state: str) -> None:
    """Send the state change to the actions for the new state, and note each in the history."""
    from moto.sns.models import sns_backends

    actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions,
               "INSUFFICIENT_DATA": alarm.insufficient_data_actions}[alarm.state_value]
    if not alarm.actions_enabled or not actions:
        return
    at = _epoch(alarm.state_updated_timestamp)
    subject, message, text = notification(alarm, old_state, at)
    backend = _backend_of(alarm)
    for arn in actions:
        parts = arn.split(":")
        data = {"actionState": "Succeeded", "notificationResource": arn, "stateUpdateTimestamp": int(at * 1000)}
        if len(parts) >= 6 and parts[2] == "sns":
            try:
                sns_backends[parts[4]][parts[3]].publish(json.dumps({"default": message, "email": text}), arn=arn,
                                                         subject=subject, message_structure="json")
                data["publishedMessage"] = message
                _record(backend, alarm, "Action", f"Successfully executed action {arn}", data, alarm.state_updated_timestamp)
                continue
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        else:
            error = "only SNS topic actions are run by the local AWS"
        data["actionState"] = "Failed"
        data["error"] = error
        log.warning("alarm %s: action %s failed: %s", alarm.name, arn, error)
        _record(backend, alarm, "Action", f"Failed to execute action {arn}. Received error: {error}", data,
                alarm.state_updated_timestamp)


def install_extensions() -> None:
    """Patch moto's CloudWatch models and responses (idempotent)."""
    from moto.cloudwatch import models, responses

    if getattr(models.Alarm, "_crudstack_extended", False):
        return
    alarm_init, update_state = models.Alarm.__init__, models.Alarm.update_state
    put_metric_alarm, delete_alarms = models.CloudWatchBackend.put_metric_alarm, models.CloudWatchBackend.delete_alarms

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        alarm_init(self, *args, **kwargs)
        self.state_value = "INSUFFICIENT_DATA"  # as CloudWatch: nothing is known of a new alarm yet

    def new_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        old_state, old_reason = self.state_value, self.state_reason
        update_state(self, reason, reason_data, state_value)
        if old_state == state_value:
            return
        new = {"stateValue": state_value, "stateReason": reason}
        if reason_data:
            new["stateReasonData"] = json.loads(reason_data)
        _record(_backend_of(self), self, "StateUpdate", f"Alarm updated from {old_state} to {state_value}",
                {"version": "1.0", "oldState": {"stateValue": old_state, "stateReason": old_reason}, "newState": new},
                self.state_updated_timestamp)
        _publish_actions(self, old_state)

    def put(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", args[0] if args else None)
        previous = self.alarms.get(name)
        alarm = put_metric_alarm(self, *args, **kwargs)
        if previous is not None:
            # An update changes the configuration only; the state stays (CloudWatch's PutMetricAlarm).
            alarm.state_value, alarm.state_reason = previous.state_value, previous.state_reason
            alarm.state_reason_data, alarm.state_updated_timestamp = previous.state_reason_data, previous.state_updated_timestamp
            _record(self, alarm, "ConfigurationUpdate", f'Alarm "{name}" updated',
                    {"version": "1.0", "type": "Update", "originalUpdatedAlarm": _configuration(previous),
                     "updatedAlarm": _configuration(alarm)}, alarm.configuration_updated_timestamp)
        else:
            _record(self, alarm, "ConfigurationUpdate", f'Alarm "{name}" created',
                    {"version": "1.0", "type": "Create", "createdAlarm": _configuration(alarm)},
                    alarm.configuration_updated_timestamp)
        return alarm

    def delete(self: Any, alarm_names: list[str]) -> None:
        from moto.core.utils import utcnow

        gone = [self.alarms[name] for name in alarm_names if name in self.alarms]
        delete_alarms(self, alarm_names)
        for alarm in gone:
            _record(self, alarm, "ConfigurationUpdate", f'Alarm "{alarm.name}" deleted',
                    {"version": "1.0", "type": "Delete", "deletedAlarm": _configuration(alarm)}, utcnow())

    models.Alarm.__init__ = init
    models.Alarm.update_state = new_state
    models.CloudWatchBackend.put_metric_alarm = put
    models.CloudWatchBackend.delete_alarms = delete
    models.Alarm._crudstack_extended = True
    responses.CloudWatchResponse.describe_alarm_history = _describe_alarm_history
    responses.CloudWatchResponse.enable_alarm_actions = _enable_alarm_actions
    responses.CloudWatchResponse.disable_alarm_actions = _disable_alarm_actions


def _as_epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _epoch(value)
    if isinstance(value, (int, float)):
        return float(value)
    return _epoch(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _describe_alarm_history(self: Any) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("AlarmName")
    kinds = self._get_param("AlarmTypes") or ["MetricAlarm"]
    item_type = self._get_param("HistoryItemType")
    start, end = _as_epoch(self._get_param("StartDate")), _as_epoch(self._get_param("EndDate"))
    limit = min(int(self._get_param("MaxRecords") or 100), 100)
    offset = int(self._get_param("NextToken") or 0)
    items = [item for item in _history(self.cloudwatch_backend)
             if (name is None or item["AlarmName"] == name) and item["AlarmType"] in kinds
             and (item_type is None or item["HistoryItemType"] == item_type)
             and (start is None or _epoch(item["Timestamp"]) >= start)
             and (end is None or _epoch(item["Timestamp"]) <= end)]
    if self._get_param("ScanBy", "TimestampDescending") == "TimestampDescending":
        items.reverse()
    page = items[offset:offset + limit]
    result: dict[str, Any] = {"AlarmHistoryItems": page}
    if offset + limit < len(items):
        result["NextToken"] = str(offset + limit)
    return ActionResult(result)


def _set_actions_enabled(self: Any, enabled: bool) -> Any:
    from moto.core.responses import EmptyResult

    for name in self._get_param("AlarmNames", []):
        alarm = self.cloudwatch_backend.alarms.get(name)
        if alarm is not None:
            alarm.actions_enabled = enabled
    return EmptyResult()


def _enable_alarm_actions(self: Any) -> Any:
    return _set_actions_enabled(self, True)


def _disable_alarm_actions(self: Any) -> Any:
    return _set_actions_enabled(self, False)
