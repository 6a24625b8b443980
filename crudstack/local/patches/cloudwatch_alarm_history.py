"""CloudWatch API actions moto answers wrongly or not at all, answered from our alarm history:
DescribeAlarmHistory, EnableAlarmActions, DisableAlarmActions (installed by patches/cloudwatch_alarms.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crudstack.local.cloudwatch.history import alarm_history
from crudstack.local.cloudwatch.models import epoch
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
