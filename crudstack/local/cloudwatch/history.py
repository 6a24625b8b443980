"""What follows an alarm's state change, as CloudWatch does it: the alarm history
(DescribeAlarmHistory) and CloudWatch's notification published to the alarm's actions for the new
state (AlarmActions, OKActions, InsufficientDataActions) through the local SNS.

patches/cloudwatch_alarms.py hooks these into moto's CloudWatch."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import logging
import threading
from typing import Any

from crudstack.local.cloudwatch.rules import OPERATORS, epoch, iso_time
from crudstack.local import moto_backends

log = logging.getLogger(__name__)

HISTORY_LIMIT = 10_000


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
        "AlarmConfigurationUpdatedTimestamp": iso_time(epoch(alarm.configuration_updated_timestamp)),
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



# The alarm history, beside moto's alarms rather than on them: alarm ARN -> [(order, item)], a history outliving
# its alarm as CloudWatch's does. The server snapshots it with the state (HISTORY_PART, server/serve.py).
_history: dict[str, list[tuple[int, dict[str, Any]]]] = {}
_order = itertools.count()
_lock = threading.Lock()


def alarm_history(backend: Any) -> list[dict[str, Any]]:
    """The history items of every alarm of a backend's account and region, oldest first."""
    where = f":cloudwatch:{backend.region_name}:{backend.account_id}:alarm:"
    with _lock:
        entries = [entry for arn, items in _history.items() if where in arn for entry in items]
    return [item for _, item in sorted(entries, key=lambda entry: entry[0])]


def record_history(backend: Any, alarm: Any, kind: str, summary: str, data: dict[str, Any], when: dt.datetime) -> None:
    item = {"AlarmName": alarm.name, "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
            "Timestamp": when, "HistoryItemType": kind, "HistorySummary": summary, "HistoryData": json.dumps(data)}
    where = f":cloudwatch:{backend.region_name}:{backend.account_id}:alarm:"
    with _lock:
        _history.setdefault(alarm.alarm_arn, []).append((next(_order), item))
        mine = [(order, arn) for arn, items in _history.items() if where in arn for order, _ in items]
        if len(mine) > HISTORY_LIMIT:  # drop the backend's oldest items
            cut = sorted(mine)[len(mine) - HISTORY_LIMIT - 1][0]
            for arn in {arn for _, arn in mine}:
                _history[arn] = [entry for entry in _history[arn] if entry[0] > cut]


def dump_history() -> dict[str, list[tuple[int, dict[str, Any]]]]:
    with _lock:
        return {arn: list(items) for arn, items in _history.items()}


def load_history(saved: dict[str, list[tuple[int, dict[str, Any]]]]) -> None:
    global _order
    with _lock:
        _history.clear()
        _history.update(saved)
        _order = itertools.count(max((order for items in saved.values() for order, _ in items), default=-1) + 1)


def configuration(alarm: Any) -> dict[str, Any]:
    return {"alarmName": alarm.name, "alarmArn": alarm.alarm_arn, "namespace": alarm.namespace,
            "metricName": alarm.metric_name, "dimensions": [{"name": d.name, "value": d.value} for d in alarm.dimensions],
            "statistic": alarm.statistic, "extendedStatistic": alarm.extended_statistic, "period": alarm.period,
            "evaluationPeriods": alarm.evaluation_periods, "datapointsToAlarm": alarm.datapoints_to_alarm,
            "threshold": alarm.threshold, "comparisonOperator": alarm.comparison_operator,
            "treatMissingData": alarm.treat_missing_data, "actionsEnabled": alarm.actions_enabled,
            "alarmActions": list(alarm.alarm_actions), "okActions": list(alarm.ok_actions),
            "insufficientDataActions": list(alarm.insufficient_data_actions)}


def backend_of(alarm: Any) -> Any:
    cloudwatch_backends = moto_backends.backends('cloudwatch')

    return cloudwatch_backends[_account_of(alarm)][alarm.region_name]


def publish_actions(alarm: Any, old_state: str) -> None:
    """Send the state change to the actions for the new state, and note each in the history."""
    sns_backends = moto_backends.backends('sns')

    actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions,
               "INSUFFICIENT_DATA": alarm.insufficient_data_actions}[alarm.state_value]
    if not alarm.actions_enabled or not actions:
        return
    at = epoch(alarm.state_updated_timestamp)
    subject, message, text = notification(alarm, old_state, at)
    backend = backend_of(alarm)
    for arn in actions:
        parts = arn.split(":")
        data = {"actionState": "Succeeded", "notificationResource": arn, "stateUpdateTimestamp": int(at * 1000)}
        if len(parts) >= 6 and parts[2] == "sns":
            try:
                sns_backends[parts[4]][parts[3]].publish(json.dumps({"default": message, "email": text}), arn=arn,
                                                         subject=subject, message_structure="json")
                data["publishedMessage"] = message
                record_history(backend, alarm, "Action", f"Successfully executed action {arn}", data, alarm.state_updated_timestamp)
                continue
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        else:
            error = "only SNS topic actions are run by the local AWS"
        data["actionState"] = "Failed"
        data["error"] = error
        log.warning("alarm %s: action %s failed: %s", alarm.name, arn, error)
        record_history(backend, alarm, "Action", f"Failed to execute action {arn}. Received error: {error}", data,
                alarm.state_updated_timestamp)
