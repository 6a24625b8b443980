"""Where the local runtime and gateway put CloudWatch logs and metrics.

Both write into moto's in-process backends rather than over HTTP (an invocation must not wait
for CloudWatch). `MotoTelemetry` does that directly; `JournaledTelemetry` does the same through
the durable state (crudstack.local.state.durable), so the logs and metrics a restart brings back are
the ones that were written.

    put_log_events(account, region, group, stream, events)   events: [(timestamp ms, message)]
    put_metric_data(account, region, namespace, data)        data: PutMetricData's MetricData
"""

from __future__ import annotations

from crudstack.local import moto_backends

from typing import Any


class MotoTelemetry:
    def put_log_events(self, account: str, region: str, group: str, stream: str, events: list) -> None:
        logs_backends = moto_backends.backends('logs')

        backend = logs_backends[account][region]
        # Lambda creates its log group and each execution environment's stream on first use.
        backend.ensure_log_group(group)
        backend.ensure_log_stream(group, stream)
        ordered = sorted(events, key=lambda event: event[0])  # PutLogEvents wants them in order
        backend.put_log_events(group, stream, [{"timestamp": ts, "message": message} for ts, message in ordered])

    def put_metric_data(self, account: str, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
        cloudwatch_backends = moto_backends.backends('cloudwatch')

        cloudwatch_backends[account][region].put_metric_data(namespace, data)

    def cloudwatch_backends(self) -> Any:
        """account -> region -> put_metric_data(namespace, data), the shape of moto's cloudwatch_backends."""
        return _CloudWatchView(self)


class JournaledTelemetry(MotoTelemetry):
    """MotoTelemetry whose every write is an operation of the durable state (journaled, replayed)."""

    def __init__(self, state: Any):
        self.state = state
        state.register("logs.put_log_events", super().put_log_events)
        state.register("cloudwatch.put_metric_data", super().put_metric_data)

    def put_log_events(self, account: str, region: str, group: str, stream: str, events: list) -> None:
        self.state.apply("logs.put_log_events", account=account, region=region, group=group, stream=stream,
                         events=[list(event) for event in events])

    def put_metric_data(self, account: str, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
        self.state.apply("cloudwatch.put_metric_data", account=account, region=region, namespace=namespace, data=data)


class _CloudWatchView:
    def __init__(self, telemetry: MotoTelemetry, account: str | None = None, region: str | None = None):
        self._telemetry, self._account, self._region = telemetry, account, region

    def __getitem__(self, key: str) -> "_CloudWatchView":
        if self._account is None:
            return _CloudWatchView(self._telemetry, key)
        return _CloudWatchView(self._telemetry, self._account, key)

    def put_metric_data(self, namespace: str, data: list[dict[str, Any]]) -> None:
        self._telemetry.put_metric_data(self._account, self._region, namespace, data)
