"""moto's CloudWatch with an alarm history (a fix that could be offered to moto): every configuration and
state change of an alarm is a history item (cloudwatch/history.py keeps them, by alarm ARN), answered by
DescribeAlarmHistory, which moto does not implement
(docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarmHistory.html); and
EnableAlarmActions / DisableAlarmActions, which moto answers without changing the alarm."""

from __future__ import annotations

import datetime as dt
from typing import Any

import json

from crudstack.local.cloudwatch.history import alarm_history, backend_of, configuration, record_history
from crudstack.local.patches.core import add, replace
from crudstack.local.cloudwatch.rules import epoch
from crudstack.local import moto_backends


def _as_epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return epoch(value)
    if isinstance(value, (int, float)):
        return float(value)
    return epoch(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def describe_alarm_history(self: Any) -> Any:
    ActionResult = moto_backends.action_result

    name = self._get_param("AlarmName")
    kinds = self._get_param("AlarmTypes") or ["MetricAlarm"]
    item_type = self._get_param("HistoryItemType")
    start, end = _as_epoch(self._get_param("StartDate")), _as_epoch(self._get_param("EndDate"))
    limit = min(int(self._get_param("MaxRecords") or 100), 100)
    offset = int(self._get_param("NextToken") or 0)
    items = [item for item in alarm_history(self.cloudwatch_backend)
             if (name is None or item["AlarmName"] == name) and item["AlarmType"] in kinds
             and (item_type is None or item["HistoryItemType"] == item_type)
             and (start is None or epoch(item["Timestamp"]) >= start)
             and (end is None or epoch(item["Timestamp"]) <= end)]
    if self._get_param("ScanBy", "TimestampDescending") == "TimestampDescending":
        items.reverse()
    page = items[offset:offset + limit]
    result: dict[str, Any] = {"AlarmHistoryItems": page}
    if offset + limit < len(items):
        result["NextToken"] = str(offset + limit)
    return ActionResult(result)


def _set_actions_enabled(self: Any, enabled: bool) -> Any:
    EmptyResult = moto_backends.empty_result

    for name in self._get_param("AlarmNames", []):
        alarm = self.cloudwatch_backend.alarms.get(name)
        if alarm is not None:
            alarm.actions_enabled = enabled
    return EmptyResult()


def enable_alarm_actions(self: Any) -> Any:
    return _set_actions_enabled(self, True)


def disable_alarm_actions(self: Any) -> Any:
    return _set_actions_enabled(self, False)


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.cloudwatch import models, responses

    update_state = models.Alarm.update_state
    put_metric_alarm, delete_alarms = models.CloudWatchBackend.put_metric_alarm, models.CloudWatchBackend.delete_alarms

    def new_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        old_state, old_reason = self.state_value, self.state_reason
        update_state(self, reason, reason_data, state_value)
        if old_state == state_value:
            return
        new = {"stateValue": state_value, "stateReason": reason}
        if reason_data:
            new["stateReasonData"] = json.loads(reason_data)
        record_history(backend_of(self), self, "StateUpdate", f"Alarm updated from {old_state} to {state_value}",
                       {"version": "1.0", "oldState": {"stateValue": old_state, "stateReason": old_reason},
                        "newState": new}, self.state_updated_timestamp)

    def put(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", args[0] if args else None)
        previous = self.alarms.get(name)
        alarm = put_metric_alarm(self, *args, **kwargs)
        if previous is not None:
            record_history(self, alarm, "ConfigurationUpdate", f'Alarm "{name}" updated',
                           {"version": "1.0", "type": "Update", "originalUpdatedAlarm": configuration(previous),
                            "updatedAlarm": configuration(alarm)}, alarm.configuration_updated_timestamp)
        else:
            record_history(self, alarm, "ConfigurationUpdate", f'Alarm "{name}" created',
                           {"version": "1.0", "type": "Create", "createdAlarm": configuration(alarm)},
                           alarm.configuration_updated_timestamp)
        return alarm

    def delete(self: Any, alarm_names: list[str]) -> None:
        from moto.core.utils import utcnow

        gone = [self.alarms[name] for name in alarm_names if name in self.alarms]
        delete_alarms(self, alarm_names)
        for alarm in gone:
            record_history(self, alarm, "ConfigurationUpdate", f'Alarm "{alarm.name}" deleted',
                           {"version": "1.0", "type": "Delete", "deletedAlarm": configuration(alarm)}, utcnow())

    replace(models.Alarm, "update_state", new_state)
    replace(models.CloudWatchBackend, "put_metric_alarm", put)
    replace(models.CloudWatchBackend, "delete_alarms", delete)
    add(responses.CloudWatchResponse, "describe_alarm_history", describe_alarm_history)
    replace(responses.CloudWatchResponse, "enable_alarm_actions", enable_alarm_actions)
    replace(responses.CloudWatchResponse, "disable_alarm_actions", disable_alarm_actions)
    _installed = True
