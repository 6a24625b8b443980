"""moto's CloudWatch alarms, stated as CloudWatch states them (a fix that could be offered to moto):

- a new alarm starts INSUFFICIENT_DATA, not OK: "INSUFFICIENT_DATA: The alarm has just started, the metric
  is not available, or not enough data is available" (docs.aws.amazon.com/AmazonCloudWatch/latest/
  monitoring/alarm-evaluation.html, "Alarm states");
- PutMetricAlarm on an existing alarm changes its configuration and keeps its state (moto starts it over).
"""

from __future__ import annotations

from typing import Any

from crudstack.local.patches.core import replace

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.cloudwatch import models

    alarm_init, put_metric_alarm = models.Alarm.__init__, models.CloudWatchBackend.put_metric_alarm

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        alarm_init(self, *args, **kwargs)
        self.state_value = "INSUFFICIENT_DATA"  # as CloudWatch: nothing is known of a new alarm yet

    def put(self: Any, *args: Any, **kwargs: Any) -> Any:
        previous = self.alarms.get(kwargs.get("name", args[0] if args else None))
        alarm = put_metric_alarm(self, *args, **kwargs)
        if previous is not None:  # an update changes the configuration only; the state stays
            alarm.state_value, alarm.state_reason = previous.state_value, previous.state_reason
            alarm.state_reason_data, alarm.state_updated_timestamp = previous.state_reason_data, previous.state_updated_timestamp
        return alarm

    replace(models.Alarm, "__init__", init)
    replace(models.CloudWatchBackend, "put_metric_alarm", put)
    _installed = True
