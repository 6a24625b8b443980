"""The alarm evaluator: a thread that, when each alarm's period ends, reads the local metrics and
sets the alarm's state when the decision (cloudwatch/rules.py) differs."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any, Callable

from crudstack.local.cloudwatch.rules import AlarmSpec, collect, evaluate, evaluation_range
from crudstack.local import moto_backends

log = logging.getLogger(__name__)


def set_alarm_state(account: str, region: str, alarm: str, reason: str, reason_data: str, state: str) -> None:
    """The state change itself: moto's SetAlarmState (history and notifications follow, see install_extensions)."""
    cloudwatch_backends = moto_backends.backends('cloudwatch')

    backend = cloudwatch_backends[account][region]
    if alarm in backend.alarms:  # deleted between the decision and now: nothing to do
        backend.set_alarm_state(alarm, reason, reason_data, state)


class AlarmEvaluator:
    """Evaluates every metric alarm of every account and region once each of its periods ends.

    apply: runs a state change; the server passes the durable state's journaled `apply`, so a
    change (and what it published) survives a restart.
    """

    def __init__(self, apply: Callable[..., Any] | None = None, interval: float = 1.0, clock: Callable[[], float] = time.time):
        self._apply = apply or (lambda name, **args: set_alarm_state(**args))
        self._interval = interval
        self._clock = clock
        self._evaluated: dict[tuple, float] = {}  # (account, region, alarm, configured at) -> range end
        self._reported: set[tuple] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "AlarmEvaluator":
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception:
                log.exception("alarm evaluation failed")

    def tick(self) -> int:
        """Evaluate the alarms whose period has ended since they were last evaluated; returns how many changed."""
        cloudwatch_backends = moto_backends.backends('cloudwatch')
        backend_lock = moto_backends.lock()

        now = self._clock()
        with backend_lock:
            backends = list(cloudwatch_backends.iter_backends())
        changed = 0
        for account, region, backend in backends:
            due = {}
            for alarm in list(backend.alarms.values()):
                spec = self._spec(account, region, alarm)
                if spec is None:
                    continue
                key = (account, region, alarm.name, alarm.configuration_updated_timestamp)
                end = evaluation_range(spec, now)[1]
                if self._evaluated.get(key, -math.inf) < end:
                    due[spec] = (alarm, key, end)
            if not due:
                continue
            points = collect(backend.metric_data, due, now)
            for spec, (alarm, key, end) in due.items():
                self._evaluated[key] = end
                decision = evaluate(spec, points[spec], alarm.state_value, now)
                if decision is None or decision.state == alarm.state_value:
                    continue
                log.info("alarm %s: %s -> %s: %s", alarm.name, alarm.state_value, decision.state, decision.reason)
                self._apply("cloudwatch.set_alarm_state", account=account, region=region, alarm=alarm.name,
                            reason=decision.reason, reason_data=json.dumps(decision.reason_data), state=decision.state)
                changed += 1
        return changed

    def _spec(self, account: str, region: str, alarm: Any) -> AlarmSpec | None:
        if alarm.rule is not None or alarm.metric_data_queries or not alarm.metric_name:
            why = "composite and metric-math alarms are not evaluated locally"
        else:
            spec = AlarmSpec.from_moto(alarm)
            why = spec.unsupported()
            if why is None:
                return spec
        if (account, region, alarm.name) not in self._reported:
            self._reported.add((account, region, alarm.name))
            log.warning("alarm %s is not evaluated: %s", alarm.name, why)
        return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
