"""moto's CloudWatch, extended as CloudWatch behaves: a new alarm starts INSUFFICIENT_DATA (moto: OK),
an update keeps the state, every change is in the alarm history (DescribeAlarmHistory), and each state
change publishes CloudWatch's notification to the alarm's actions (cloudwatch/history.py)."""

from __future__ import annotations

import json
from typing import Any

from crudstack.local.cloudwatch import responses as cloudwatch_responses
from crudstack.local.cloudwatch.history import backend_of, configuration, publish_actions, record_history
from crudstack.local.patches.core import add, replace


def install() -> None:
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
        record_history(backend_of(self), self, "StateUpdate", f"Alarm updated from {old_state} to {state_value}",
                {"version": "1.0", "oldState": {"stateValue": old_state, "stateReason": old_reason}, "newState": new},
                self.state_updated_timestamp)
        publish_actions(self, old_state)

    def put(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", args[0] if args else None)
        previous = self.alarms.get(name)
        alarm = put_metric_alarm(self, *args, **kwargs)
        if previous is not None:
            # An update changes the configuration only; the state stays (CloudWatch's PutMetricAlarm).
            alarm.state_value, alarm.state_reason = previous.state_value, previous.state_reason
            alarm.state_reason_data, alarm.state_updated_timestamp = previous.state_reason_data, previous.state_updated_timestamp
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

    replace(models.Alarm, "__init__", init)
    replace(models.Alarm, "update_state", new_state)
    replace(models.CloudWatchBackend, "put_metric_alarm", put)
    replace(models.CloudWatchBackend, "delete_alarms", delete)
    models.Alarm._crudstack_extended = True
    add(responses.CloudWatchResponse, "describe_alarm_history", cloudwatch_responses.describe_alarm_history)
    replace(responses.CloudWatchResponse, "enable_alarm_actions", cloudwatch_responses.enable_alarm_actions)
    replace(responses.CloudWatchResponse, "disable_alarm_actions", cloudwatch_responses.disable_alarm_actions)
