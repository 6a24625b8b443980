"""The executor runs a run's changes as a dependency graph, many at once: no call before the calls it
depends on, independent work overlapping, and every service kept under its documented rate."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest

from crudstack.quotas import quota_for, quota_key
from crudstack.realistic import AccountModel, Delays, SimClock
from tests.functional.conftest import assert_one_complete_stack


class Timeline:
    """When each call was sent and answered, on the wall clock, with a small delay on every call so that
    calls sent at once really are on the wire together."""

    def __init__(self, delay_s: float = 0.02):
        self.delay_s = delay_s
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def started(self, model, params, context, **_):
        context["timeline"] = {"op": model.name, "params": dict(params), "start": time.monotonic()}

    def send(self, **_):
        time.sleep(self.delay_s)   # the call is on the wire for a while

    def answered(self, context, parsed=None, **_):
        entry = context.get("timeline")
        if entry is not None:
            entry["end"] = time.monotonic()
            entry["answer"] = parsed or {}
            with self._lock:
                self.calls.append(entry)

    @property
    def hooks(self) -> tuple:
        return (("before-parameter-build", self.started), ("before-send", self.send), ("after-call", self.answered))

    def of(self, op: str, **match) -> list[dict]:
        return [c for c in self.calls if c["op"] == op and all(c["params"].get(k) == v for k, v in match.items())]

    def first_start(self, op: str, **match) -> float:
        return min(c["start"] for c in self.of(op, **match))

    def last_end(self, op: str, **match) -> float:
        return max(c["end"] for c in self.of(op, **match))


def test_no_call_is_sent_before_the_calls_it_depends_on_have_answered_and_independent_ones_overlap(provision, config, aws_clients):
    timeline = Timeline()

    provision(config, hooks=timeline.hooks)

    assert_one_complete_stack(aws_clients, config)
    t = timeline
    # Step 2 before 3: the functions are created once the role exists.
    assert t.last_end("CreateRole") <= t.first_start("CreateFunction")
    # Step 4's own chain: the API, then /items, then /items/{id}, then the methods of each.
    assert t.last_end("CreateRestApi") <= t.first_start("CreateResource")
    items = t.of("CreateResource", pathPart="items")[0]
    item = t.of("CreateResource", pathPart="{id}")[0]
    assert items["end"] <= item["start"]
    made = {c["answer"]["id"]: c["end"] for c in t.of("CreateResource")}
    for put in t.of("PutMethod") + t.of("PutIntegration"):   # each once its own resource exists
        if put["params"]["resourceId"] in made:
            assert made[put["params"]["resourceId"]] <= put["start"]
    # A permission waits for its function to be made and for the API.
    for base in config.lambda_.functions:
        name = config.function_name(base)
        assert t.last_end("CreateFunction", FunctionName=name) <= t.first_start("AddPermission", FunctionName=name)
    # Step 5 after every route; the stage after the deployment; alarms after the topic.
    assert max(t.last_end(op) for op in ("PutIntegration", "PutMethod", "PutIntegrationResponse")) <= t.first_start("CreateDeployment")
    assert t.last_end("CreateDeployment") <= t.first_start("CreateStage")
    assert t.last_end("CreateTopic") <= t.first_start("PutMetricAlarm")
    # And what does not depend on each other runs at once: the table and the role, the five functions,
    # the monitoring step alongside the API.
    overlapping = lambda a, b: a["start"] < b["end"] and b["start"] < a["end"]   # noqa: E731
    assert overlapping(t.of("CreateTable")[0], t.of("CreateRole")[0])
    creates = sorted(t.of("CreateFunction"), key=lambda c: c["start"])
    assert any(overlapping(a, b) for a, b in zip(creates, creates[1:]))
    monitoring = [c for op in ("CreateLogGroup", "PutRetentionPolicy", "CreateTopic", "PutMetricAlarm") for c in t.of(op)]
    api = [c for op in ("CreateRestApi", "CreateResource", "PutMethod", "PutIntegration") for c in t.of(op)]
    assert any(overlapping(m, a) for m in monitoring for a in api)


def test_teardown_deletes_the_role_and_the_log_groups_only_once_the_functions_are_gone(provision, teardown, config):
    provision(config)
    timeline = Timeline()

    teardown(config, hooks=timeline.hooks)

    functions_gone = timeline.last_end("DeleteFunction")
    assert functions_gone <= timeline.first_start("DeleteRole")
    assert functions_gone <= timeline.first_start("DeleteLogGroup")


def test_the_quota_limiter_keeps_every_service_under_its_documented_rate_in_a_fresh_provision(provision, config, aws_clients):
    random.seed(3)
    clock = SimClock()
    model = AccountModel(clock=clock, delays=Delays(table=2, role=2, function=2, resource=1))
    sent: dict[str, list[float]] = defaultdict(list)

    def note(model, **_):   # on the calling thread's simulated time
        key = quota_key(model.service_model.service_name, model.name)
        if key:
            sent[key].append(clock())

    provision(config, clock=clock, attach=model.attach, hooks=(("before-call", note),))   # after the limiter's wait

    assert_one_complete_stack(aws_clients, config)
    assert [r for r in model.refused if r.endswith(":quota")] == []   # API Gateway never had to say 429
    assert sum(len(times) for times in sent.values()) > 30
    for key, times in sent.items():   # no window of the quota's length holds more than it allows
        service, _, operation = key.partition(":")
        quota = quota_for(service, operation if operation != "*" else "__any_other__")
        allowed = quota.burst or quota.requests
        times.sort()
        for i, at in enumerate(times):
            within = [t for t in times[i:] if t < at + quota.per_s]
            assert len(within) <= allowed + quota.requests, (key, at, len(within))


@pytest.mark.parametrize("delays", [Delays(role=8, table=6, function=5, resource=4), Delays.typical()],
                         ids=["tests", "typical"])
def test_a_fresh_provision_takes_about_the_models_longest_chain_of_waits(delays, provision, config, aws_clients):
    random.seed(5)
    clock = SimClock()
    model = AccountModel(clock=clock, delays=delays)

    provision(config, clock=clock, attach=model.attach)

    assert_one_complete_stack(aws_clients, config)
    ideal = model.critical_path()
    assert ideal <= clock.now <= ideal * 1.3, f"{clock.now:.1f} s simulated against a longest chain of {ideal:.1f} s"
