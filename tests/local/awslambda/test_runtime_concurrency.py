"""The runtime's concurrency with real workers: invocations wait for a worker in order, a deadline ends
the wait, reserved concurrency throttles at once, and a write to moto stops the workers it made stale.

Handlers block until a file appears (WAIT_FOR_FILES), and the tests look at the runtime's own counts
of running and waiting invocations, so what runs at once is known, not a matter of timing.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from crudstack.local.awslambda.runtime import LambdaRuntime
from tests.local.awslambda.test_runtime import (  # noqa: F401 - fixtures
    COUNTER, REGION, UNUSED_ENDPOINT, WAIT_FOR_FILES, Functions, aws, invoke_json, metric_statistic, pid_is_gone,
    wait_until,
)

GATE = WAIT_FOR_FILES + textwrap.dedent("""
    def handler(event, context):
        with open(event["log"], "a") as log:
            log.write(event["name"] + "\\n")
        wait_for([event["release"]])
        return {"name": event["name"], "pid": os.getpid()}
    """)


@pytest.fixture
def functions(aws, tmp_path):
    return Functions(tmp_path)


@pytest.fixture
def one_worker(aws):
    runtime = LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, max_concurrency=1, spare_workers=0)
    yield runtime
    runtime.shutdown()


class Calls:
    """Invocations of the gate function in threads; each logs its name when it starts running."""

    def __init__(self, runtime: LambdaRuntime, tmp_path: Path, name: str = "gate"):
        self.runtime, self.function = runtime, name
        self.log, self.release = tmp_path / "ran.txt", tmp_path / "release"
        self.results: dict[str, object] = {}
        self.threads: list[threading.Thread] = []

    def start(self, name: str, **kwargs) -> None:
        event = {"name": name, "log": str(self.log), "release": str(self.release)}
        thread = threading.Thread(target=lambda: self.results.__setitem__(
            name, self.runtime.invoke(self.function, json.dumps(event).encode(), region=REGION, **kwargs)))
        thread.start()
        self.threads.append(thread)

    def ran(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def finish(self) -> None:
        self.release.touch()
        for thread in self.threads:
            thread.join(60)


def test_invocations_waiting_for_the_only_worker_run_in_the_order_they_came(functions, one_worker, tmp_path):
    arn = functions.create("gate", GATE, timeout=30)
    calls = Calls(one_worker, tmp_path)
    calls.start("first")
    wait_until(lambda: calls.ran() == ["first"], timeout=30, message="the first invocation to run")
    for waiting, name in enumerate(("second", "third", "fourth"), start=1):
        calls.start(name)
        wait_until(lambda: one_worker.invocations(arn) == (1, waiting), message=f"{name} to wait")

    calls.finish()

    assert calls.ran() == ["first", "second", "third", "fourth"]
    assert not any(result.throttled for result in calls.results.values())
    assert len({json.loads(result.payload)["pid"] for result in calls.results.values()}) == 1, "one warm worker"


def test_an_invocation_that_finds_no_free_worker_by_its_deadline_gives_up_without_running(functions, one_worker,
                                                                                          tmp_path):
    arn = functions.create("gate", GATE, timeout=30)
    calls = Calls(one_worker, tmp_path)
    calls.start("first")
    wait_until(lambda: calls.ran() == ["first"], timeout=30, message="the first invocation to run")

    event = {"name": "late", "log": str(calls.log), "release": str(calls.release)}
    late = one_worker.invoke("gate", json.dumps(event).encode(), region=REGION, deadline=time.monotonic() + 0.2)
    calls.finish()

    assert late.throttled and late.waited_out
    assert json.loads(late.payload)["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert calls.ran() == ["first"], "the late invocation never ran"
    assert one_worker.invocations(arn) == (0, 0)


def test_reserved_concurrency_throttles_the_invocation_after_n_at_once_with_workers_to_spare(functions, aws, tmp_path):
    arn = functions.create("gate", GATE, timeout=30)
    functions.client.put_function_concurrency(FunctionName="gate", ReservedConcurrentExecutions=2)
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, max_concurrency=4, spare_workers=0) as runtime:
        calls = Calls(runtime, tmp_path)
        calls.start("a")
        calls.start("b")
        wait_until(lambda: sorted(calls.ran()) == ["a", "b"], timeout=30, message="two running invocations")

        third, body = invoke_json(runtime, "gate", {"name": "c", "log": str(calls.log), "release": str(calls.release)})
        calls.finish()
        runtime.flush()

        assert third.throttled and not third.waited_out
        assert body == {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
                        "message": "Rate Exceeded."}
        assert sorted(calls.ran()) == ["a", "b"], "the throttled invocation never ran"
        assert not any(result.throttled for result in calls.results.values())
        assert runtime.invocations(arn) == (0, 0)
        assert metric_statistic("gate", "Throttles", "Sum") == 1


def test_the_idle_workers_of_a_deleted_function_stop_as_soon_as_the_server_reports_the_write(functions, aws):
    functions.create("counter", COUNTER)
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=0) as runtime:  # idle timeout: 10 minutes
        pid = invoke_json(runtime, "counter")[1]["pid"]
        functions.client.delete_function(FunctionName="counter")
        runtime.lookups.changed()  # what the server calls after every write but DynamoDB's

        wait_until(lambda: pid_is_gone(pid), message="the deleted function's worker to stop")
        assert runtime.worker_pids() == []


def test_the_idle_workers_of_an_updated_function_stop_at_once_not_at_its_next_invocation(functions, aws):
    functions.create("counter", COUNTER)
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=0) as runtime:
        pid = invoke_json(runtime, "counter")[1]["pid"]
        functions.client.update_function_configuration(FunctionName="counter", MemorySize=256)
        runtime.lookups.changed()

        wait_until(lambda: pid_is_gone(pid), message="the stale worker to stop")
        assert json.loads(runtime.invoke("counter", b"{}", region=REGION).payload)["count"] == 1, "a new worker"


def test_a_worker_busy_when_its_function_changes_stops_as_soon_as_its_invocation_ends(functions, one_worker, tmp_path):
    functions.create("gate", GATE, timeout=30)
    calls = Calls(one_worker, tmp_path)
    calls.start("busy")
    wait_until(lambda: calls.ran() == ["busy"], timeout=30, message="the invocation to run")
    functions.update_code("gate", GATE.replace('"name": event["name"]', '"name": "v2"'))
    one_worker.lookups.changed()

    calls.finish()
    pid = json.loads(calls.results["busy"].payload)["pid"]

    wait_until(lambda: pid_is_gone(pid), message="the stale worker to stop after its invocation")
    assert one_worker.worker_pids() == []


def test_the_gateway_deadline_reaches_the_runtime_through_invoke(functions, one_worker, tmp_path):
    """invoke(deadline=) in the past with a free worker still runs: only waiting is bounded."""
    functions.create("gate", GATE, timeout=30)
    (tmp_path / "release").touch()

    result, payload = invoke_json(one_worker, "gate", {"name": "now", "log": str(tmp_path / "ran.txt"),
                                                        "release": str(tmp_path / "release")},
                                  deadline=time.monotonic() - 1)

    assert not result.throttled and payload["name"] == "now"
    assert os.path.exists(tmp_path / "ran.txt")


def test_without_a_deadline_an_invocation_waits_no_longer_than_its_functions_timeout(functions, one_worker, tmp_path):
    """The Invoke API's case: version 1 (timeout 30 s) holds the only worker; $LATEST, its timeout
    now 1 s, shares the function's pool and gives up after its own timeout, never running."""
    arn = functions.create("gate", GATE, timeout=30)
    functions.client.publish_version(FunctionName="gate")
    functions.client.update_function_configuration(FunctionName="gate", Timeout=1)
    calls = Calls(one_worker, tmp_path)
    calls.start("held", qualifier="1")
    wait_until(lambda: calls.ran() == ["held"], timeout=30, message="version 1 to run")

    event = {"name": "latest", "log": str(calls.log), "release": str(calls.release)}
    late = one_worker.invoke("gate", json.dumps(event).encode(), region=REGION)
    calls.finish()

    assert late.throttled and late.waited_out
    assert calls.ran() == ["held"]
    assert one_worker.invocations(arn) == (0, 0)
