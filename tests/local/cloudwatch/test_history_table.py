"""The alarm history lives beside moto's objects (cloudwatch/history.py), keyed by alarm ARN, not on them.

The CloudWatch patches change moto for the whole process they are installed in, so the check runs in a
process of its own (as tests/local/patches/test_speedups.py does), leaving this test process's moto as it was."""

import subprocess
import sys

CHECK = '''
from moto.cloudwatch.models import cloudwatch_backends

from crudstack.local import patches
from crudstack.local.cloudwatch import history
from crudstack.local.patches import cloudwatch_alarms

patches.configure_moto()
cloudwatch_alarms.install()
backend = cloudwatch_backends["123456789012"]["eu-north-1"]
backend.put_metric_alarm(name="h23-history", namespace="N", metric_name="M", comparison_operator="GreaterThanThreshold",
                         evaluation_periods=1, period=60, threshold=1.0, statistic="Sum", description="",
                         dimensions=[], alarm_actions=[], metric_data_queries=None, datapoints_to_alarm=None,
                         extended_statistic=None, ok_actions=[], insufficient_data_actions=[], unit=None,
                         actions_enabled=True, treat_missing_data=None, evaluate_low_sample_count_percentile=None,
                         threshold_metric_id=None, rule=None, tags=[])
assert "crudstack_alarm_history" not in vars(backend), "the history is stored on moto's backend"
alarm = backend.alarms["h23-history"]
assert alarm.state_value == "INSUFFICIENT_DATA", alarm.state_value
kept = history.dump_history()
assert [item["HistorySummary"] for _, item in kept[alarm.alarm_arn]] == ['Alarm "h23-history" created'], kept
history.load_history({})
assert history.alarm_history(backend) == []
history.load_history(kept)
assert [item["AlarmName"] for item in history.alarm_history(backend)] == ["h23-history"]
print("ok")
'''


def test_an_alarms_history_is_kept_beside_moto_and_snapshotted_as_a_part():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr
