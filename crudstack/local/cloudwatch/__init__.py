"""CloudWatch in the local AWS, beyond what moto stores: metrics published as Lambda and API Gateway
publish them, alarms that really fire, their history and notifications.

    metrics.py      MetricsBatcher: the one queue for AWS/Lambda and AWS/ApiGateway metrics, flushed off
                    the request path
    telemetry.py    where logs and metrics are written: moto's backends, through the journal in the server
    rules.py        an alarm's decision from its datapoints, as CloudWatch makes it (pure)
    evaluator.py    AlarmEvaluator: the thread that evaluates every alarm when its period ends
    history.py      what a state change leaves: DescribeAlarmHistory items (kept beside moto's alarms, by
                    alarm ARN), the notification to its actions

moto's CloudWatch is hooked to these by patches/cloudwatch_alarm_state.py, cloudwatch_alarm_history.py
and cloudwatch_alarms.py. Nothing here raises an exception
of its own: a failed write of telemetry is logged, never raised to a request.
"""
