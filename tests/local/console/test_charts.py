"""The console's CloudWatch charts: CloudWatch's statistics per period over the last hour."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from crudstack.local.console.charts import CHARTS, aggregate, charts, series

NOW = 1_800_000_030.0  # 30 s into a minute
ERRORS = next(c for c in CHARTS if c.metric == "Errors")
DURATION = next(c for c in CHARTS if c.metric == "Duration")


def datum(name, at, value=None, function="f", namespace="AWS/Lambda", **stats):
    dims = [SimpleNamespace(name="FunctionName", value=function)]
    when = dt.datetime.fromtimestamp(at, dt.timezone.utc).replace(tzinfo=None)  # moto keeps naive UTC
    fields = {"value": value} if value is not None else stats
    return SimpleNamespace(namespace=namespace, name=name, dimensions=dims, timestamp=when, unit=None, **fields)


def test_sum_adds_values_and_statistic_sets():
    assert aggregate("Sum", [1, 0, 1], [(3, 0, 1, 5)]) == 5
    assert aggregate("Sum", [], []) is None


def test_p99_is_the_nearest_rank_of_the_single_values():
    assert aggregate("p99", [float(v) for v in range(1, 101)], []) == 99
    assert aggregate("p50", [4.0, 1.0, 3.0, 2.0], []) == 2
    assert aggregate("p99", [], [(1, 1, 1, 1)]) is None  # a statistic set has no distribution


def test_a_series_has_one_point_per_period_of_the_last_hour_with_gaps_as_none():
    data = [datum("Errors", NOW - 5, 1), datum("Errors", NOW - 2, 1), datum("Errors", NOW - 125, 1),
            datum("Errors", NOW - 4000, 1),                     # older than an hour
            datum("Errors", NOW - 5, 1, function="other"),      # another function
            datum("Invocations", NOW - 5, 1)]                   # another metric

    points = series(data, ERRORS, (("FunctionName", "f"),), 60, NOW)

    assert len(points) == 60 and points[-1][0] == 1_800_000_000
    assert points[-1][1] == 2 and points[-3][1] == 1
    assert sum(1 for _, v in points if v is not None) == 2


def test_each_alarm_threshold_is_drawn_on_its_metrics_chart_for_its_series():
    overview = {"stack": "s", "functions": ["s-Get"]}
    alarm = {"AlarmName": "s-Get-DurationP99", "Namespace": "AWS/Lambda", "MetricName": "Duration",
             "ExtendedStatistic": "p99", "Dimensions": [{"Name": "FunctionName", "Value": "s-Get"}], "Period": 10,
             "Threshold": 3000.0, "StateValue": "ALARM", "ComparisonOperator": "GreaterThanThreshold"}
    data = [datum("Duration", NOW - 3, 5000.0, function="s-Get")]

    page = charts(overview, [alarm], data, lambda name: [{"timestamp": "t", "summary": f"{name} history"}], now=NOW)

    duration = next(c for c in page["charts"] if c["title"] == "Duration p99")
    assert page["period"] == 10 and duration["period"] == 10  # the alarms' period, for a quick demo's alarms
    assert duration["thresholds"] == [{"alarm": "s-Get-DurationP99", "value": 3000.0, "series": "s-Get",
                                       "state": "ALARM", "operator": "GreaterThanThreshold"}]
    assert [v for _, v in duration["series"][0]["points"] if v is not None] == [5000.0]
    errors = next(c for c in page["charts"] if c["title"] == "Errors")
    assert errors["thresholds"] == []  # a Duration alarm is not drawn on Errors
    assert page["alarms"][0]["history"] == [{"timestamp": "t", "summary": "s-Get-DurationP99 history"}]
