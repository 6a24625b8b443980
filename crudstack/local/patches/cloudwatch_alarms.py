"""moto's CloudWatch alarms publish to their actions: each state change sends CloudWatch's notification
to the actions for the new state (AlarmActions, OKActions, InsufficientDataActions) through the local SNS
(cloudwatch/history.py publish_actions). Installed after cloudwatch_alarm_state and cloudwatch_alarm_history."""

from __future__ import annotations

from typing import Any

from crudstack.local.cloudwatch.history import publish_actions
from crudstack.local.patches import cloudwatch_alarm_history, cloudwatch_alarm_state
from crudstack.local.patches.core import replace

_installed = False


def install() -> None:
    """All three CloudWatch patches, in order (idempotent)."""
    global _installed
    cloudwatch_alarm_state.install()
    cloudwatch_alarm_history.install()
    if _installed:
        return
    from moto.cloudwatch import models

    update_state = models.Alarm.update_state

    def new_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        old_state = self.state_value
        update_state(self, reason, reason_data, state_value)
        if old_state != state_value:
            publish_actions(self, old_state)

    replace(models.Alarm, "update_state", new_state)
    _installed = True
