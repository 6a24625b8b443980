"""How the local AWS decides an alarm's state, as CloudWatch does: pure functions, no moto."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from types import SimpleNamespace

import pytest

from crudstack.local.cloudwatch.rules import AlarmSpec, Datapoint, Samples, collect, evaluate, evaluation_range, statistic

T0 = 1_718_100_000  # a multiple of 60 and of 10: 2024-06-11T10:00:00Z

ERRORS = AlarmSpec(name="fn-Errors", namespace="AWS/Lambda", metric_name="Errors",
                   dimensions=(("FunctionName", "fn"),), statistic="Sum", extended_statistic=None, period=60,
                   evaluation_periods=1, datapoints_to_alarm=1, threshold=1.0,
                   comparison="GreaterThanOrEqualToThreshold", treat_missing="notBreaching")
P99 = replace(ERRORS, name="fn-DurationP99", metric_name="Duration", statistic=None, extended_statistic="p99",
              threshold=3000.0, comparison="GreaterThanThreshold")


def points(spec, *values, start=T0):
    return [Datapoint(start + i * spec.period, v, 0 if v is None else 1) for i, v in enumerate(values)]


def test_a_breaching_datapoint_sets_alarm_with_cloudwatchs_reason():
    decision = evaluate(ERRORS, points(ERRORS, 2.0), "OK", T0 + 65)

    assert decision.state == "ALARM"
    assert decision.reason == ("Threshold Crossed: 1 out of the last 1 datapoints [2.0 (11/06/24 10:00:00)] was greater "
                               "than or equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition).")
    assert decision.reason_data["recentDatapoints"] == [2.0]
    assert decision.reason_data["evaluatedDatapoints"] == [{"timestamp": "2024-06-11T10:00:00.000+0000",
                                                            "sampleCount": 1.0, "value": 2.0}]
    assert decision.reason_data["statistic"] == "Sum" and decision.reason_data["period"] == 60


def test_a_datapoint_within_the_threshold_sets_ok():
    decision = evaluate(ERRORS, points(ERRORS, 0.0), "ALARM", T0 + 65)

    assert decision.state == "OK"
    assert decision.reason == ("Threshold Crossed: 1 out of the last 1 datapoints [0.0 (11/06/24 10:00:00)] was not "
                               "greater than or equal to the threshold (1.0) (minimum 1 datapoint for ALARM -> OK transition).")


def test_datapoints_to_alarm_needs_m_of_the_last_n_breaching():
    three = replace(ERRORS, evaluation_periods=3, datapoints_to_alarm=2)

    assert evaluate(three, points(three, 5.0, 0.0, 0.0), "OK", T0).state == "OK"
    assert evaluate(three, points(three, 5.0, 0.0, 3.0), "OK", T0).state == "ALARM"


@pytest.mark.parametrize("treat, expected, reason_part", [
    ("notBreaching", "OK", "no datapoints were received for 2 periods and 2 missing datapoints were treated as [NonBreaching]"),
    ("breaching", "ALARM", "no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching]"),
    ("missing", "INSUFFICIENT_DATA", "Insufficient Data: 2 datapoints were unknown."),
])
def test_an_evaluation_range_with_no_data_follows_treat_missing_data(treat, expected, reason_part):
    spec = replace(ERRORS, evaluation_periods=2, datapoints_to_alarm=2, treat_missing=treat)

    decision = evaluate(spec, points(spec, None, None), "OK", T0)

    assert decision.state == expected and reason_part in decision.reason


def test_ignore_keeps_the_state_when_there_is_no_data():
    assert evaluate(replace(ERRORS, treat_missing="ignore"), points(ERRORS, None), "ALARM", T0) is None


def test_missing_datapoints_treated_as_breaching_count_towards_the_alarm():
    spec = replace(ERRORS, evaluation_periods=3, datapoints_to_alarm=2, treat_missing="breaching")

    decision = evaluate(spec, points(spec, 0.0, None, 4.0), "OK", T0)

    assert decision.state == "ALARM" and "1 missing datapoint treated as [Breaching]" in decision.reason


@pytest.mark.parametrize("operator, value, breaches", [
    ("GreaterThanThreshold", 1.0, False), ("GreaterThanThreshold", 1.5, True),
    ("GreaterThanOrEqualToThreshold", 1.0, True), ("LessThanThreshold", 1.0, False),
    ("LessThanThreshold", 0.5, True), ("LessThanOrEqualToThreshold", 1.0, True),
])
def test_each_comparison_operator(operator, value, breaches):
    spec = replace(ERRORS, comparison=operator)

    assert evaluate(spec, points(spec, value), "OK", T0).state == ("ALARM" if breaches else "OK")


def test_p99_is_the_nearest_rank_percentile_of_the_single_values():
    values = tuple(float(v) for v in range(1, 101))  # 1..100

    assert statistic(P99, Samples(values)) == 99.0
    assert statistic(replace(P99, extended_statistic="p50"), Samples(values)) == 50.0
    assert statistic(P99, Samples((7.0,))) == 7.0
    assert statistic(P99, Samples((), sets=((10.0, 1.0, 9.0, 2.0),))) is None  # statistic sets have no distribution


def test_statistics_combine_single_values_and_statistic_sets():
    samples = Samples((1.0, 3.0), sets=((10.0, 2.0, 6.0, 3.0),))  # sum 10 over 3 samples, min 2, max 6

    def stat(name):
        return statistic(replace(ERRORS, statistic=name), samples)

    assert (stat("Sum"), stat("SampleCount"), stat("Minimum"), stat("Maximum"), stat("Average")) == (14.0, 5.0, 1.0, 6.0, 2.8)
    assert statistic(ERRORS, Samples()) is None


def test_a_percentile_with_too_few_samples_keeps_the_state_when_told_to_ignore_them():
    spec = replace(P99, low_sample_percentile="ignore")
    few = [Datapoint(T0, 5000.0, 20)]  # p99 needs 10 / (1 - 0.99) = 1000 samples

    assert evaluate(spec, few, "OK", T0) is None
    assert evaluate(P99, few, "OK", T0).state == "ALARM"  # "evaluate", the default


def test_unsupported_alarms_say_why():
    assert replace(ERRORS, comparison="LessThanLowerOrGreaterThanUpperThreshold").unsupported().startswith("comparison")
    assert "only pNN" in replace(P99, extended_statistic="tm99").unsupported()
    assert ERRORS.unsupported() is None and P99.unsupported() is None


def test_the_evaluation_range_is_the_last_complete_periods_after_a_settling_delay():
    spec = replace(ERRORS, period=10, evaluation_periods=3)

    assert evaluation_range(spec, T0 + 35) == (T0, T0 + 30)      # 35 s in: [0, 30) is complete and settled
    assert evaluation_range(spec, T0 + 31) == (T0 - 10, T0 + 20)  # 1 s after 30: still settling


def datum(name, when, value=None, dims=(("FunctionName", "fn"),), unit=None, stats=None):
    dimensions = [SimpleNamespace(name=k, value=v) for k, v in dims]
    timestamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).replace(tzinfo=None)
    if stats is not None:
        s, lo, hi, n = stats
        return SimpleNamespace(namespace="AWS/Lambda", name=name, dimensions=dimensions, timestamp=timestamp, unit=unit,
                               sum=s, min=lo, max=hi, sample_count=n)
    return SimpleNamespace(namespace="AWS/Lambda", name=name, dimensions=dimensions, timestamp=timestamp, unit=unit,
                           value=value)


def test_collect_buckets_the_matching_metric_by_period_and_ignores_other_dimensions_and_names():
    spec = replace(ERRORS, period=10, evaluation_periods=2)
    data = [
        datum("Errors", T0 + 1, stats=(1.0, 0.0, 1.0, 4.0)),
        datum("Errors", T0 + 12, stats=(2.0, 0.0, 1.0, 3.0)),
        datum("Errors", T0 + 13, value=1.0),
        datum("Errors", T0 + 14, value=5.0, dims=(("FunctionName", "other"),)),
        datum("Errors", T0 + 15, value=5.0, dims=(("FunctionName", "fn"), ("Resource", "fn:alias"))),
        datum("Invocations", T0 + 16, value=7.0),
        datum("Errors", T0 + 21, value=9.0),  # the current period: not complete yet
    ]

    found = collect(data, [spec], T0 + 25)[spec]

    assert [(p.start - T0, p.value, p.samples) for p in found] == [(0, 1.0, 4.0), (10, 3.0, 4.0)]


def test_collect_reports_a_period_without_data_as_missing_and_honours_the_alarms_unit():
    spec = replace(ERRORS, period=10, evaluation_periods=2, unit="Count")
    data = [datum("Errors", T0 + 12, value=1.0, unit="Count"), datum("Errors", T0 + 13, value=1.0, unit="Seconds")]

    found = collect(data, [spec], T0 + 25)[spec]

    assert [(p.start - T0, p.value) for p in found] == [(0, None), (10, 1.0)]


def test_collect_still_finds_recent_data_behind_a_few_backdated_datums():
    spec = replace(ERRORS, period=10, evaluation_periods=1)
    data = [datum("Errors", T0 + 12, value=4.0)] + [datum("Errors", T0 - 3600, value=1.0) for _ in range(10)]

    assert [p.value for p in collect(data, [spec], T0 + 25)[spec]] == [4.0]
