"""One metrics batcher for the local AWS/Lambda and AWS/ApiGateway metrics, off the request path.

A request only appends a tuple to a deque; `flush` (a thread of the batcher's own, or the Lambda
runtime's housekeeping) aggregates what is queued per second and writes one PutMetricData per
account and region. moto stores naive UTC datetimes at second resolution, so that is the grain.

    record(account, region, api_name, stage, status, latency_ms, integration_ms)   API Gateway
    add_lambda(account, region, function, name, value, unit)                       Lambda
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from crudstack.local import moto_backends
from typing import Any

log = logging.getLogger(__name__)

# Lambda metrics put as single values rather than statistic sets, so that alarms can take
# percentiles of them (Duration p99), as Lambda publishes them.
PERCENTILE_METRICS = frozenset({"Duration"})


class MetricsBatcher:
    """Queues metric values; `flush` writes them to `cloudwatch_backends` (account -> region ->
    put_metric_data(namespace, data), the shape of moto's; moto's own by default)."""

    API_NAMESPACE = "AWS/ApiGateway"
    LAMBDA_NAMESPACE = "AWS/Lambda"

    def __init__(self, cloudwatch_backends: Any = None, interval: float = 1.0):
        self._backends = cloudwatch_backends
        self._interval = interval
        self._pending: collections.deque = collections.deque()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "MetricsBatcher":
        self._thread = threading.Thread(target=self._run, name="metrics-batcher", daemon=True)
        self._thread.start()
        return self

    def record(self, account_id: str, region: str, api_name: str, stage: str, status: int,
               latency_ms: float, integration_ms: float | None) -> None:
        """One API Gateway request: Count, 4XXError, 5XXError, Latency, IntegrationLatency per ApiName + Stage."""
        self._pending.append(("api", account_id, region, api_name, stage, int(time.time()), status, latency_ms,
                              integration_ms))

    def add_lambda(self, account_id: str, region: str, function: str, name: str, value: float, unit: str) -> None:
        """One value of a Lambda metric (Invocations, Errors, Duration, Throttles) per FunctionName."""
        self._pending.append(("lambda", account_id, region, function, name, unit, int(time.time()), value))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            api: dict[tuple, list] = collections.defaultdict(list)
            lambdas: dict[tuple, list] = collections.defaultdict(list)
            while True:
                try:
                    item = self._pending.popleft()
                except IndexError:
                    break
                if item[0] == "api":
                    api[item[1:6]].append(item[6:])
                else:
                    lambdas[item[1:7]].append(item[7])
            if not api and not lambdas:
                return
            if self._backends is None:
                cloudwatch_backends = moto_backends.backends('cloudwatch')
                self._backends = cloudwatch_backends
            for (account_id, region, api_name, stage, second), rows in api.items():
                self._put(account_id, region, self.API_NAMESPACE, _api_metric_data(api_name, stage, second, rows))
            per_backend: dict[tuple, list] = collections.defaultdict(list)
            for (account_id, region, function, name, unit, second), values in lambdas.items():
                per_backend[(account_id, region)].append(_lambda_datum(function, name, unit, second, values))
            for (account_id, region), data in per_backend.items():
                self._put(account_id, region, self.LAMBDA_NAMESPACE, data)

    def _put(self, account_id: str, region: str, namespace: str, data: list[dict]) -> None:
        try:
            self._backends[account_id][region].put_metric_data(namespace, data)
        except Exception:
            log.exception("could not put %d %s metrics", len(data), namespace)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _timestamp(second: int) -> dt.datetime:
    # moto compares metric timestamps with naive UTC datetimes; an aware datetime here would break
    # get_metric_statistics for the whole namespace.
    return dt.datetime.fromtimestamp(second, dt.timezone.utc).replace(tzinfo=None)


def _lambda_datum(function: str, name: str, unit: str, second: int, values: list[float]) -> dict:
    datum: dict[str, Any] = {"MetricName": name, "Unit": unit, "Timestamp": _timestamp(second),
                             "Dimensions": [{"Name": "FunctionName", "Value": function}]}
    if name in PERCENTILE_METRICS:
        counted = collections.Counter(round(v, 3) for v in values)
        datum.update(Values=list(counted), Counts=list(counted.values()))
    else:
        datum["StatisticValues"] = {"Sum": sum(values), "Minimum": min(values), "Maximum": max(values),
                                    "SampleCount": len(values)}
    return datum


def _api_metric_data(api_name: str, stage: str, second: int, rows: list[tuple[int, float, float | None]]) -> list[dict]:
    dimensions = [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": stage}]
    timestamp = _timestamp(second)
    count = len(rows)
    errors_4xx = sum(1 for status, _, _ in rows if 400 <= status < 500)
    errors_5xx = sum(1 for status, _, _ in rows if status >= 500)
    integration = [ms for _, _, ms in rows if ms is not None]

    def datum(name: str, values: list[float], counts: list[int] | None, unit: str) -> dict:
        item = {"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp, "Unit": unit,
                "Values": [round(v, 3) for v in values]}
        if counts is not None:
            item["Counts"] = counts
        return item

    data = [
        datum("Count", [1], [count], "Count"),
        datum("4XXError", [0, 1], [count - errors_4xx, errors_4xx], "Count"),
        datum("5XXError", [0, 1], [count - errors_5xx, errors_5xx], "Count"),
        datum("Latency", [ms for _, ms, _ in rows], None, "Milliseconds"),
    ]
    if integration:
        data.append(datum("IntegrationLatency", integration, None, "Milliseconds"))
    return data
