"""CloudWatch Logs of a function (/aws/lambda/<name>): the log stream of each execution environment,
START / END / REPORT lines, and the queue that writes them off the request path."""

from __future__ import annotations

import collections
import datetime
import logging
import math
import threading
import time
import uuid

from crudstack.local.awslambda.models import FunctionSpec
from crudstack.local.cloudwatch.metrics import MetricsBatcher
from crudstack.local.cloudwatch.telemetry import MotoTelemetry


class LambdaTelemetry:
    """Queues log events and metric values; `flush` hands them to the telemetry store
    (crudstack.local.cloudwatch.telemetry). Producers only append to a deque, so an invocation
    never waits for CloudWatch."""

    def __init__(self, log: logging.Logger, store=None):
        self._log = log
        self._store = store or MotoTelemetry()
        self._queue: collections.deque = collections.deque()
        self._flush_lock = threading.Lock()
        self.metrics = MetricsBatcher(self._store.cloudwatch_backends())

    def add_logs(self, spec: FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        if events:
            self._queue.append((spec.account_id, spec.region, spec.log_group, stream, events))

    def add_metric(self, spec: FunctionSpec, name: str, value: float, unit: str) -> None:
        self.metrics.add_lambda(spec.account_id, spec.region, spec.name, name, value, unit)

    def flush(self) -> None:
        with self._flush_lock:
            logs: dict[tuple, list] = collections.defaultdict(list)
            while self._queue:
                item = self._queue.popleft()
                logs[item[:4]].extend(item[4])
            for (account, region, group, stream), events in logs.items():
                try:
                    self._store.put_log_events(account, region, group, stream, events)
                except Exception:
                    self._log.exception("could not write %d log events to %s %s", len(events), group, stream)
        self.metrics.flush()


def iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_ms() -> int:
    return int(time.time() * 1000)


def log_events(logs: list[tuple[int, str, bool]]) -> list[tuple[int, str]]:
    """Worker log frames -> CloudWatch events: one per printed line, one per log record."""
    events = []
    for ts, text, whole in logs:
        if whole:
            events.append((ts, text if text.endswith("\n") else text + "\n"))
            continue
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        events.extend((ts, line + "\n") for line in lines)
    return events


def new_log_stream(spec: FunctionSpec) -> str:
    """One stream per execution environment, named as AWS names them."""
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"


def report_line(spec: FunctionSpec, request_id: str, duration_ms: float, init_ms: float | None, rss_kb: int,
                status: str | None = None, error_type: str | None = None) -> str:
    billed = math.ceil(duration_ms + (init_ms or 0.0))  # AWS bills the init phase too
    parts = [f"REPORT RequestId: {request_id}", f"Duration: {duration_ms:.2f} ms", f"Billed Duration: {billed} ms",
             f"Memory Size: {spec.memory_size} MB", f"Max Memory Used: {math.ceil(rss_kb / 1024)} MB"]
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    if status:
        parts.append(f"Status: {status}")
    if error_type:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts) + "\n"
