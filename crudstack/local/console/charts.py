"""CloudWatch for the console: the stack's metrics over the last hour as chart series, each alarm's
threshold drawn on the chart of its metric, and each alarm's state history.

The series are computed from moto's metric data in this process, the same data the alarm evaluator
reads (cloudwatch/rules.py), with CloudWatch's statistics: Sum per period, and pNN by nearest rank
(CloudWatch User Guide, "CloudWatch statistics definitions":
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from crudstack.local.cloudwatch.rules import epoch
from crudstack.local import moto_backends

WINDOW_S = 3600
DEFAULT_PERIOD_S = 60


@dataclass(frozen=True)
class ChartSpec:
    title: str
    namespace: str
    metric: str
    statistic: str  # "Sum" or "pNN"
    unit: str


CHARTS = (
    ChartSpec("Invocations", "AWS/Lambda", "Invocations", "Sum", "count"),
    ChartSpec("Errors", "AWS/Lambda", "Errors", "Sum", "count"),
    ChartSpec("Duration p99", "AWS/Lambda", "Duration", "p99", "ms"),
    ChartSpec("API Latency p99", "AWS/ApiGateway", "Latency", "p99", "ms"),
    ChartSpec("API 5XXError", "AWS/ApiGateway", "5XXError", "Sum", "count"),
)


def aggregate(statistic: str, values: list[float], sets: list[tuple[float, float, float, float]]) -> float | None:
    """One period's statistic: Sum of values and statistic sets; pNN of the single values (nearest rank)."""
    if statistic == "Sum":
        if not values and not sets:
            return None
        return sum(values) + sum(s[0] for s in sets)
    if not values:  # statistic sets carry no distribution
        return None
    ordered = sorted(values)
    rank = math.ceil(float(statistic[1:]) / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def series(metric_data: list, spec: ChartSpec, dimensions: tuple[tuple[str, str], ...], period: int,
           now: float) -> list[list[float | None]]:
    """[[period start (epoch s), value or None], ...] over the last hour, oldest first."""
    end = math.floor(now / period) * period + period
    start = end - math.ceil(WINDOW_S / period) * period
    buckets: dict[float, tuple[list, list]] = {}
    for datum in list(metric_data):  # a copy: the runtime appends while we read
        if datum.namespace != spec.namespace or datum.name != spec.metric:
            continue
        when = epoch(datum.timestamp)
        if not start <= when < end:
            continue
        if tuple(sorted((d.name, d.value) for d in datum.dimensions)) != dimensions:
            continue
        values, sets = buckets.setdefault(start + math.floor((when - start) / period) * period, ([], []))
        if hasattr(datum, "value"):
            values.append(float(datum.value))
        else:
            sets.append((float(datum.sum), float(datum.min), float(datum.max), float(datum.sample_count)))
    points = []
    for at in range(int(start), int(end), period):
        values, sets = buckets.get(at, ([], []))
        points.append([at, aggregate(spec.statistic, values, sets)])
    return points


def charts(overview: dict[str, Any], alarms: list[dict], metric_data: list, history: Callable[[str], list[dict]],
           now: float | None = None) -> dict[str, Any]:
    """The CloudWatch page: five charts (a series per function, or the API), and the alarms with history."""
    now = time.time() if now is None else now
    period = min([int(a["Period"]) for a in alarms] + [DEFAULT_PERIOD_S])
    api_dimensions = {tuple(sorted((d["Name"], d["Value"]) for d in a.get("Dimensions", [])))
                      for a in alarms if a.get("Namespace") == "AWS/ApiGateway"}
    result = []
    for spec in CHARTS:
        if spec.namespace == "AWS/Lambda":
            lines = [(fn, (("FunctionName", fn),)) for fn in overview["functions"]]
        else:
            lines = [(" ".join(v for _, v in dims), dims) for dims in sorted(api_dimensions)]
        thresholds = []
        for alarm in alarms:
            stat = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
            if (alarm.get("Namespace"), alarm.get("MetricName"), stat) == (spec.namespace, spec.metric, spec.statistic):
                dims = tuple(sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])))
                label = next((name for name, d in lines if d == dims), alarm["AlarmName"])
                thresholds.append({"alarm": alarm["AlarmName"], "value": alarm["Threshold"], "series": label,
                                   "state": alarm["StateValue"], "operator": alarm["ComparisonOperator"]})
        result.append({"title": spec.title, "unit": spec.unit, "statistic": spec.statistic, "period": period,
                       "series": [{"label": name, "points": series(metric_data, spec, dims, period, now)}
                                  for name, dims in lines],
                       "thresholds": thresholds})
    shown_alarms = [{"name": a["AlarmName"], "state": a["StateValue"], "reason": a.get("StateReason", ""),
                     "metric": f"{a.get('Namespace')} {a.get('MetricName')}",
                     "statistic": a.get("ExtendedStatistic") or a.get("Statistic"), "period": a.get("Period"),
                     "threshold": a.get("Threshold"), "operator": a.get("ComparisonOperator"),
                     "history": history(a["AlarmName"])} for a in alarms]
    return {"stack": overview["stack"], "period": period, "now": now, "charts": result, "alarms": shown_alarms}


def alarm_history(cloudwatch: Any, name: str, limit: int = 10) -> list[dict]:
    """The alarm's latest state changes, newest first (DescribeAlarmHistory, HistoryItemType StateUpdate)."""
    items = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate",
                                              MaxRecords=limit).get("AlarmHistoryItems", [])
    return [{"timestamp": item["Timestamp"].isoformat(), "summary": item["HistorySummary"]} for item in items]


def metric_data_of(account: str, region: str) -> list:
    cloudwatch_backends = moto_backends.backends('cloudwatch')

    return cloudwatch_backends[account][region].metric_data
