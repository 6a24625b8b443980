"""The local Lambda runtime: real handler code in real worker processes, against moto.

Functions are created with boto3 under `mock_aws` from small zips written here; the
runtime reads them from moto's in-process backends, exactly as inside the local server.
Handlers signal each other through files in tmp_path, so nothing here depends on timing.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from werkzeug.serving import make_server
from werkzeug.test import Client

from crudstack.local.awslambda.exceptions import FunctionNotFound, InvalidRequestContent
from crudstack.local.awslambda.responses import invoke_api_app
from crudstack.local.awslambda.runtime import LambdaRuntime
from crudstack.local.awslambda.protocol import FrameReader, encode_frame, write_all

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[3]
UNUSED_ENDPOINT = "http://127.0.0.1:9"  # handlers that make no AWS calls


# ---------------------------------------------------------------------------
# helpers


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, textwrap.dedent(content))
    return buffer.getvalue()


def zip_of_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


class Functions:
    """Creates functions in moto from handler sources written under tmp_path."""

    def __init__(self, tmp_path: Path, region: str = REGION):
        self.tmp_path = tmp_path
        self.region = region
        self.client = boto3.client("lambda", region_name=region)
        iam = boto3.client("iam", region_name=region)
        self.role = iam.create_role(RoleName=f"runtime-test-{region}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]

    def package(self, name: str, files: dict[str, str]) -> bytes:
        source = self.tmp_path / "src" / name
        source.mkdir(parents=True, exist_ok=True)
        for relative, content in files.items():
            path = source / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(content))
        return zip_of_directory(source)

    def create(self, name: str, code: str, *, timeout: int = 3, env: dict | None = None, memory: int = 128,
               extra_files: dict[str, str] | None = None, handler: str = "app.handler") -> str:
        package = self.package(name, {"app.py": code, **(extra_files or {})})
        response = self.client.create_function(
            FunctionName=name, Runtime="python3.11", Role=self.role, Handler=handler, Code={"ZipFile": package},
            Timeout=timeout, MemorySize=memory, Environment={"Variables": env or {}},
        )
        return response["FunctionArn"]

    def update_code(self, name: str, code: str) -> None:
        self.client.update_function_code(FunctionName=name, ZipFile=self.package(name + "-v2", {"app.py": code}))


def invoke_json(runtime: LambdaRuntime, name: str, event=None, **kwargs):
    result = runtime.invoke(name, json.dumps(event if event is not None else {}).encode(), region=REGION, **kwargs)
    return result, json.loads(result.payload)


def pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still there, or a zombie not yet collected: a zombie counts as alive here.
    return False


def wait_until(predicate, timeout: float = 10.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message}")


def metric_statistic(function: str, metric: str, stat: str) -> float:
    """One statistic of an AWS/Lambda metric over the last few minutes, read with boto3."""
    now = datetime.datetime.now(datetime.timezone.utc)
    points = boto3.client("cloudwatch", region_name=REGION).get_metric_statistics(
        Namespace="AWS/Lambda", MetricName=metric, Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5),
        Period=600, Statistics=[stat])["Datapoints"]
    return sum(point[stat] for point in points)


WAIT_FOR_FILES = """
import os, time
def wait_for(paths, timeout=20):
    deadline = time.time() + timeout
    while not all(os.path.exists(p) for p in paths):
        if time.time() > deadline:
            raise TimeoutError("gave up waiting for " + ", ".join(paths))
        time.sleep(0.01)
"""


@pytest.fixture
def aws():
    with mock_aws():
        yield


@pytest.fixture
def functions(aws, tmp_path):
    return Functions(tmp_path)


@pytest.fixture
def runtime(aws):
    runtime = LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, max_concurrency=4)
    yield runtime
    runtime.shutdown()


# ---------------------------------------------------------------------------
# running handlers


ECHO = """
def handler(event, context):
    return event
"""

COUNTER = """
import os
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    return {"count": COUNT, "pid": os.getpid(), "version": "VERSION"}
"""


def test_handler_receives_the_event_and_its_return_value_comes_back_as_json(functions, runtime):
    functions.create("echo", ECHO)
    event = {"httpMethod": "GET", "path": "/items/1", "body": None, "nested": {"list": [1, 2.5, "x"]}}

    result, payload = invoke_json(runtime, "echo", event)

    assert payload == event
    assert result.function_error is None and not result.timed_out and not result.throttled
    assert result.executed_version == "$LATEST"
    assert re.fullmatch(r"[0-9a-f-]{36}", result.request_id)


def test_an_empty_payload_is_an_empty_event_and_invalid_json_is_refused(functions, runtime):
    functions.create("echo", ECHO)

    assert json.loads(runtime.invoke("echo", b"", region=REGION).payload) == {}
    with pytest.raises(InvalidRequestContent, match="Could not parse request body into json"):
        runtime.invoke("echo", b"{not json", region=REGION)
    with pytest.raises(FunctionNotFound, match=r"arn:aws:lambda:us-east-1:123456789012:function:missing"):
        runtime.invoke("missing", b"{}", region=REGION)


def test_a_warm_worker_keeps_module_state_between_invocations(functions, runtime):
    functions.create("counter", COUNTER)

    first = [invoke_json(runtime, "counter") for _ in range(3)]

    assert [payload["count"] for _, payload in first] == [1, 2, 3]
    assert len({payload["pid"] for _, payload in first}) == 1
    assert first[0][0].init_duration_ms is not None  # cold start
    assert first[1][0].init_duration_ms is None      # warm


def test_a_code_update_starts_a_new_worker_and_stops_the_old_one(functions, runtime):
    functions.create("counter", COUNTER)
    _, before = invoke_json(runtime, "counter")
    invoke_json(runtime, "counter")

    functions.update_code("counter", COUNTER.replace("VERSION", "v2"))
    _, after = invoke_json(runtime, "counter")

    assert after["version"] == "v2"
    assert after["count"] == 1, "module state must start over in a new worker"
    assert after["pid"] != before["pid"]
    wait_until(lambda: pid_is_gone(before["pid"]), message="the stale worker to exit")


def test_a_configuration_update_starts_a_new_worker_that_sees_it(functions, runtime):
    functions.create("env", """
        import os
        def handler(event, context):
            return {"stage": os.environ["STAGE"], "pid": os.getpid()}
        """, env={"STAGE": "one"})
    _, before = invoke_json(runtime, "env")

    functions.client.update_function_configuration(FunctionName="env", Environment={"Variables": {"STAGE": "two"}})
    _, after = invoke_json(runtime, "env")

    assert (before["stage"], after["stage"]) == ("one", "two")
    assert after["pid"] != before["pid"]


def test_environment_and_context_are_those_of_aws_lambda(functions, runtime):
    arn = functions.create("ctx", """
        import os, sys
        def handler(event, context):
            return {
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "path0": sys.path[0],
                "context": {
                    "aws_request_id": context.aws_request_id,
                    "function_name": context.function_name,
                    "function_version": context.function_version,
                    "invoked_function_arn": context.invoked_function_arn,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "log_group_name": context.log_group_name,
                    "log_stream_name": context.log_stream_name,
                    "remaining": context.get_remaining_time_in_millis(),
                },
            }
        """, env={"TABLE_NAME": "items"}, memory=256, timeout=7)

    result, payload = invoke_json(runtime, "ctx")

    env, context = payload["env"], payload["context"]
    assert env["TABLE_NAME"] == "items"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "ctx"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/ctx"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == context["log_stream_name"]
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", context["log_stream_name"])
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["_HANDLER"] == "app.handler"
    # The execution role's session, as Lambda gives it (tests/local/iam has the details).
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert env["AWS_SESSION_TOKEN"] == env["AWS_SECURITY_TOKEN"] not in ("", "testing")
    assert env["AWS_ENDPOINT_URL"] == UNUSED_ENDPOINT
    assert env["LAMBDA_TASK_ROOT"] == payload["cwd"] == payload["path0"]
    assert "AWS_PROFILE" not in env
    assert context == {
        "aws_request_id": result.request_id,
        "function_name": "ctx",
        "function_version": "$LATEST",
        "invoked_function_arn": arn,
        "memory_limit_in_mb": "256",  # a string on AWS too
        "log_group_name": "/aws/lambda/ctx",
        "log_stream_name": context["log_stream_name"],
        "remaining": context["remaining"],
    }
    assert 0 < context["remaining"] <= 7000


def test_an_exception_becomes_the_lambda_error_object(functions, runtime):
    functions.create("boom", """
        def handler(event, context):
            raise ValueError("no such item: " + event["id"])
        """)

    result, payload = invoke_json(runtime, "boom", {"id": "42"})

    assert result.function_error == "Unhandled"
    assert not result.timed_out
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "no such item: 42"
    assert payload["requestId"] == result.request_id
    assert len(payload["stackTrace"]) == 1
    assert 'app.py", line 3, in handler' in payload["stackTrace"][0]
    assert "[ERROR] ValueError: no such item: 42" in result.log


def test_a_handler_that_cannot_be_imported_fails_every_invocation_with_the_aws_error(functions, runtime):
    functions.create("broken", """
        import not_a_module_anywhere
        def handler(event, context):
            return 1
        """)
    functions.create("nohandler", ECHO, handler="app.missing")

    results = [invoke_json(runtime, "broken") for _ in range(2)]
    _, missing = invoke_json(runtime, "nohandler")

    for result, payload in results:
        assert result.function_error == "Unhandled"
        assert payload["errorType"] == "Runtime.ImportModuleError"
        assert payload["errorMessage"] == "Unable to import module 'app': No module named 'not_a_module_anywhere'"
    assert missing["errorType"] == "Runtime.HandlerNotFound"
    assert missing["errorMessage"] == "Handler 'missing' missing on module 'app'"


def test_a_worker_that_dies_while_importing_the_handler_returns_an_exit_error(functions, runtime):
    functions.create("dies", """
        import os
        print("importing")
        os._exit(2)
        """)

    result, error = invoke_json(runtime, "dies")

    assert result.function_error == "Unhandled"
    assert error == {"errorType": "Runtime.ExitError",
                     "errorMessage": f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 2"}
    assert result.log.startswith("importing\n")


def test_packages_installed_here_but_not_in_the_lambda_runtime_must_be_bundled(functions, runtime):
    uses_requests = """
        import requests
        def handler(event, context):
            return requests.__name__ + " " + getattr(requests, "ORIGIN", "site-packages")
        """
    functions.create("unbundled", uses_requests)
    functions.create("bundled", uses_requests, extra_files={"requests/__init__.py": "ORIGIN = 'the zip'\n"})
    functions.create("boto3only", "import boto3, dateutil, urllib3\ndef handler(event, context):\n    return 'ok'\n")

    result, error = invoke_json(runtime, "unbundled")

    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == "Unable to import module 'app': No module named 'requests'"
    assert "'requests' is installed on this machine but is not part of AWS Lambda's Python runtime" in result.log
    assert invoke_json(runtime, "bundled")[1] == "requests the zip"
    assert invoke_json(runtime, "boto3only")[1] == "ok"
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=0, lambda_packages_only=False) as everything:
        assert invoke_json(everything, "unbundled")[1] == "requests site-packages"


def test_return_values_are_marshalled_like_aws(functions, runtime):
    functions.create("values", """
        from decimal import Decimal
        def handler(event, context):
            if event.get("bad"):
                return {"tags": {"a", "b"}}
            return {"whole": Decimal("3"), "part": Decimal("2.5"), "text": "h\u00e9"}
        """)

    good = runtime.invoke("values", b"{}", region=REGION)
    result, bad = invoke_json(runtime, "values", {"bad": True})

    assert json.loads(good.payload) == {"whole": 3, "part": 2.5, "text": "h\u00e9"}
    assert result.function_error == "Unhandled"
    assert bad["errorType"] == "Runtime.MarshalError"
    assert bad["errorMessage"].startswith("Unable to marshal response: Object of type set is not JSON serializable")


def test_a_handler_that_prints_anything_cannot_corrupt_the_protocol(functions, runtime):
    functions.create("noisy", """
        import logging, os, sys
        logging.getLogger().setLevel(logging.INFO)
        def handler(event, context):
            print("plain line")
            print("partial", end="")
            sys.stdout.buffer.write(b"\\x00\\x00\\x00\\x05bytes\\n")
            os.write(1, b"\\x00\\x00\\x00\\x07fd-one\\n")
            os.write(2, b"fd-two\\n")
            logging.getLogger("app").info("multi\\nline record")
            print("first\\nsecond", end="")
            print(" continued")
            return {"ok": True}
        """)

    result, payload = invoke_json(runtime, "noisy")
    second, _ = invoke_json(runtime, "noisy")

    assert payload == {"ok": True} and result.function_error is None
    assert second.function_error is None and second.init_duration_ms is None
    assert "plain line\n" in result.log
    assert "partial\x00\x00\x00\x05bytes\n" in result.log
    assert "first\nsecond continued\n" in result.log
    assert re.search(r"\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t" + result.request_id + r"\tmulti\nline record",
                     result.log)

    def fd_level_output_logged():
        runtime.flush()
        events = boto3.client("logs", region_name=REGION).filter_log_events(logGroupName="/aws/lambda/noisy")["events"]
        messages = [event["message"] for event in events]
        return "fd-two\n" in messages and any("fd-one" in message for message in messages)

    wait_until(fd_level_output_logged, message="fd-level output in the log group")


# ---------------------------------------------------------------------------
# failure isolation


def test_a_crashing_worker_returns_an_exit_error_and_the_next_call_works(functions, runtime, tmp_path):
    functions.create("crashy", """
        import os
        def handler(event, context):
            if event.get("crash"):
                print("about to crash")
                os._exit(3)
            return {"pid": os.getpid()}
        """)
    functions.create("bystander", COUNTER)
    _, bystander_before = invoke_json(runtime, "bystander")
    _, healthy = invoke_json(runtime, "crashy")

    crashed, error = invoke_json(runtime, "crashy", {"crash": True})
    _, recovered = invoke_json(runtime, "crashy")
    _, bystander_after = invoke_json(runtime, "bystander")

    assert crashed.function_error == "Unhandled" and not crashed.timed_out
    assert error == {"errorType": "Runtime.ExitError",
                     "errorMessage": f"RequestId: {crashed.request_id} Error: Runtime exited with error: exit status 3"}
    assert "about to crash\n" in crashed.log
    assert "Status: error\tError Type: Runtime.ExitError" in crashed.log
    assert recovered["pid"] != healthy["pid"]
    assert pid_is_gone(healthy["pid"])
    assert bystander_after == {**bystander_before, "count": 2}, "another function's warm worker is untouched"


def test_a_segfault_is_reported_with_its_signal_and_the_interpreters_last_words(functions, runtime):
    functions.create("segv", """
        import ctypes, faulthandler
        faulthandler.enable()
        def handler(event, context):
            ctypes.string_at(0)
        """)

    result, error = invoke_json(runtime, "segv")

    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: signal: segmentation fault")
    before_end = result.log.split(f"END RequestId: {result.request_id}")[0]
    assert "Fatal Python error: Segmentation fault" in before_end


def test_a_handler_running_past_its_timeout_is_killed_and_the_next_call_works(functions, runtime):
    functions.create("slow", """
        import os, time
        def handler(event, context):
            if event.get("sleep"):
                print("going to sleep")
                time.sleep(event["sleep"])
            return {"pid": os.getpid()}
        """, timeout=1)
    _, before = invoke_json(runtime, "slow")

    result, error = invoke_json(runtime, "slow", {"sleep": 30})
    _, after = invoke_json(runtime, "slow")

    assert result.timed_out and result.function_error == "Unhandled"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z " + result.request_id
                        + r" Task timed out after 1\.00 seconds", error["errorMessage"])
    assert "going to sleep\n" in result.log
    assert "Status: timeout" in result.log
    assert pid_is_gone(before["pid"]), "the timed-out worker is killed"
    assert after["pid"] != before["pid"]


# ---------------------------------------------------------------------------
# concurrency


def test_invocations_of_one_function_run_in_parallel_workers(functions, runtime, tmp_path):
    functions.create("parallel", WAIT_FOR_FILES + textwrap.dedent("""
        def handler(event, context):
            started = time.time()
            open(event["mine"], "w").close()
            wait_for(event["all"])  # every invocation must be running at once to get past this
            return {"start": started, "end": time.time(), "pid": os.getpid()}
        """), timeout=30)
    marks = [str(tmp_path / f"started-{i}") for i in range(4)]
    results = [None] * 4

    def call(i):
        results[i] = invoke_json(runtime, "parallel", {"mine": marks[i], "all": marks})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    payloads = [payload for _, payload in results]
    assert all(result.function_error is None for result, _ in results), payloads
    assert max(p["start"] for p in payloads) < min(p["end"] for p in payloads), "all four overlapped"
    assert len({p["pid"] for p in payloads}) == 4


def test_beyond_the_warm_pool_an_invocation_waits_for_a_worker_instead_of_being_throttled(functions, runtime, tmp_path):
    arn = functions.create("gate", WAIT_FOR_FILES + textwrap.dedent("""
        def handler(event, context):
            open(event["mine"], "w").close()
            wait_for([event["release"]])
            return "done"
        """), timeout=30)
    release = str(tmp_path / "release")
    marks = [str(tmp_path / f"running-{i}") for i in range(5)]
    results = [None] * 5
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, invoke_json(runtime, "gate", {"mine": marks[i], "release": release}))) for i in range(5)]
    for thread in threads[:4]:
        thread.start()
    wait_until(lambda: all(os.path.exists(mark) for mark in marks[:4]), timeout=30, message="four running handlers")

    threads[4].start()
    wait_until(lambda: runtime.invocations(arn) == (4, 1), message="the fifth invocation to wait")
    assert not os.path.exists(marks[4]), "the pool holds four workers: the fifth must not run yet"
    Path(release).touch()
    for thread in threads:
        thread.join(60)

    assert [json.loads(result.payload) for result, _ in results] == ["done"] * 5
    assert not any(result.throttled for result, _ in results)
    assert runtime.invocations(arn) == (0, 0)


def test_an_event_invocation_waits_for_a_worker_and_then_runs(functions, aws, tmp_path):
    arn = functions.create("queue", WAIT_FOR_FILES + textwrap.dedent("""
        def handler(event, context):
            open(event["mine"], "w").close()
            wait_for([event["release"]])
        """), timeout=30)
    release, first, second = (str(tmp_path / name) for name in ("release", "first", "second"))
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, max_concurrency=1, spare_workers=0) as runtime:
        runtime.invoke_async("queue", json.dumps({"mine": first, "release": release}).encode(), region=REGION)
        wait_until(lambda: os.path.exists(first), message="the first event to run")
        runtime.invoke_async("queue", json.dumps({"mine": second, "release": release}).encode(), region=REGION)
        wait_until(lambda: runtime.invocations(arn) == (1, 1), message="the second event to wait")
        assert not os.path.exists(second), "one at a time: the second event must wait"
        Path(release).touch()
        wait_until(lambda: os.path.exists(second), message="the second event to run")


def test_idle_workers_are_stopped_after_the_idle_timeout(functions, aws):
    functions.create("counter", COUNTER)
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=0, idle_timeout=0.3) as runtime:
        _, payload = invoke_json(runtime, "counter")
        wait_until(lambda: pid_is_gone(payload["pid"]), message="the idle worker to be stopped")
        _, again = invoke_json(runtime, "counter")
    assert again["count"] == 1


def test_reserved_concurrency_of_zero_throttles_every_invocation(functions, runtime):
    functions.create("off", ECHO)
    functions.client.put_function_concurrency(FunctionName="off", ReservedConcurrentExecutions=0)

    result, body = invoke_json(runtime, "off")

    assert result.throttled
    assert body["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


# ---------------------------------------------------------------------------
# observability


def test_logs_are_in_cloudwatch_like_aws_writes_them(functions, runtime):
    functions.create("logged", """
        import logging
        logger = logging.getLogger()
        logger.setLevel(logging.INFO)
        print("init output")
        def handler(event, context):
            print("handling", event["n"])
            logger.info("item %s saved", event["n"])
            return None
        """, memory=512)
    cold, payload = invoke_json(runtime, "logged", {"n": 1})
    warm, _ = invoke_json(runtime, "logged", {"n": 2})
    runtime.flush()

    logs = boto3.client("logs", region_name=REGION)
    streams = logs.describe_log_streams(logGroupName="/aws/lambda/logged")["logStreams"]
    events = logs.filter_log_events(logGroupName="/aws/lambda/logged")["events"]
    messages = [event["message"] for event in events]

    assert payload is None
    assert len(streams) == 1, "one stream per worker"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", streams[0]["logStreamName"])
    cold_id, warm_id = cold.request_id, warm.request_id
    assert messages[0] == "init output\n"
    assert messages[1] == f"START RequestId: {cold_id} Version: $LATEST\n"
    assert messages[2] == "handling 1\n"
    assert re.fullmatch(rf"\[INFO\]\t\S+Z\t{cold_id}\titem 1 saved\n", messages[3])
    assert messages[4] == f"END RequestId: {cold_id}\n"
    assert re.fullmatch(rf"REPORT RequestId: {cold_id}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
                        r"Memory Size: 512 MB\tMax Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\n", messages[5])
    assert messages[6] == f"START RequestId: {warm_id} Version: $LATEST\n"
    assert re.fullmatch(rf"REPORT RequestId: {warm_id}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
                        r"Memory Size: 512 MB\tMax Memory Used: \d+ MB\n", messages[-1])
    assert warm.log == "".join(messages[6:])


def test_invocation_metrics_are_in_cloudwatch(functions, tmp_path, aws):
    functions.create("measured", """
        def handler(event, context):
            if event.get("fail"):
                raise RuntimeError("failed")
            return "ok"
        """)
    functions.create("closed", ECHO)
    functions.client.put_function_concurrency(FunctionName="closed", ReservedConcurrentExecutions=0)
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=0) as runtime:
        for event in ({}, {}, {"fail": True}):
            invoke_json(runtime, "measured", event)
        invoke_json(runtime, "closed")
    # shutdown() flushed what was queued

    statistic = metric_statistic
    assert statistic("measured", "Invocations", "Sum") == 3
    assert statistic("measured", "Errors", "Sum") == 1
    assert statistic("measured", "Duration", "SampleCount") == 3
    assert statistic("measured", "Duration", "Maximum") > 0
    assert statistic("closed", "Throttles", "Sum") == 1
    assert statistic("closed", "Invocations", "Sum") == 0


# ---------------------------------------------------------------------------
# the code that runs is the zip


def test_a_zip_that_bundles_its_own_boto3_gets_it_rather_than_the_preloaded_one(functions, aws):
    functions.create("vendored", """
        import boto3
        def handler(event, context):
            return boto3.MARKER
        """, extra_files={"boto3/__init__.py": "MARKER = 'bundled with the function'\n"})
    with LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=1) as runtime:
        wait_until(lambda: runtime.worker_pids(), message="a spare worker")
        assert json.loads(runtime.invoke("vendored", b"{}", region=REGION).payload) == "bundled with the function"


def test_a_handler_using_boto3_unchanged_reaches_the_local_dynamodb(functions, aws):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(TableName="items", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      BillingMode="PAY_PER_REQUEST")
        functions.create("put", """
            import json, os
            import boto3
            table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
            def handler(event, context):
                table.put_item(Item={"id": event["id"], "name": event["name"]})
                return {"statusCode": 201, "body": json.dumps({"id": event["id"]})}
            """, env={"TABLE_NAME": "items"}, timeout=30)
        with LambdaRuntime(endpoint_url=f"http://{host}:{port}") as runtime:
            result, payload = invoke_json(runtime, "put", {"id": "a1", "name": "lamp"})
    finally:
        server.stop()

    assert result.function_error is None, payload
    assert payload["statusCode"] == 201
    assert table.get_item(Key={"id": "a1"})["Item"] == {"id": "a1", "name": "lamp"}


# ---------------------------------------------------------------------------
# the Invoke API


@pytest.fixture
def api(functions, runtime):
    return Client(invoke_api_app(runtime))


SIGV4 = ("AWS4-HMAC-SHA256 Credential=testing/20250101/{region}/lambda/aws4_request, "
         "SignedHeaders=host;x-amz-date, Signature=00")


def post(api, name, body=b"{}", region=REGION, **headers):
    headers = {"Authorization": SIGV4.format(region=region), **headers}
    return api.post(f"/2015-03-31/functions/{name}/invocations", data=body, headers=headers)


def test_invoke_api_answers_a_request_response_invocation_like_aws(functions, api):
    functions.create("echo", ECHO)
    functions.create("boom", "def handler(event, context):\n    raise KeyError('id')\n")

    ok = post(api, "echo", b'{"a": 1}', **{"X-Amz-Log-Type": "Tail"})
    failed = post(api, "boom")

    assert ok.status_code == 200
    assert ok.get_json() == {"a": 1}
    assert ok.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert "X-Amz-Function-Error" not in ok.headers
    tail = base64.b64decode(ok.headers["X-Amz-Log-Result"]).decode()
    request_id = ok.headers["x-amzn-RequestId"]
    assert tail.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
    assert f"REPORT RequestId: {request_id}\t" in tail
    assert failed.status_code == 200
    assert failed.headers["X-Amz-Function-Error"] == "Unhandled"
    assert failed.get_json()["errorType"] == "KeyError"
    assert "X-Amz-Log-Result" not in failed.headers


def test_invoke_api_tail_is_the_last_4_kb_of_the_log(functions, api):
    functions.create("chatty", "def handler(event, context):\n    print('x' * 10000)\n")

    response = post(api, "chatty", **{"X-Amz-Log-Type": "Tail"})

    tail = base64.b64decode(response.headers["X-Amz-Log-Result"])
    assert len(tail) == 4096
    assert tail.rstrip().split(b"\n")[-1].startswith(b"REPORT RequestId:")


def test_invoke_api_errors_have_the_aws_status_codes_and_shapes(functions, api):
    functions.create("echo", ECHO)
    functions.client.put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=0)

    missing = post(api, "nope")
    bad_json = post(api, "echo", b"{oops")
    throttled = post(api, "echo")

    assert missing.status_code == 404
    assert missing.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert missing.get_json() == {"Type": "User",
                                  "Message": "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"}
    assert bad_json.status_code == 400
    assert bad_json.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert throttled.status_code == 429
    assert throttled.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert throttled.get_json() == {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                                    "Type": "User", "message": "Rate Exceeded."}


def test_invoke_api_dry_run_and_event_invocations(functions, api, tmp_path):
    functions.create("writer", """
        def handler(event, context):
            with open(event["path"], "w") as f:
                f.write(context.aws_request_id)
        """)
    target = tmp_path / "written-by-event"

    dry = post(api, "writer", **{"X-Amz-Invocation-Type": "DryRun"})
    dry_missing = post(api, "nope", **{"X-Amz-Invocation-Type": "DryRun"})
    event = post(api, "writer", json.dumps({"path": str(target)}).encode(), **{"X-Amz-Invocation-Type": "Event"})

    assert dry.status_code == 204 and dry.data == b""
    assert dry_missing.status_code == 404
    assert event.status_code == 202 and event.data == b""
    wait_until(target.exists, message="the event invocation to run")
    wait_until(lambda: target.read_text() == event.headers["x-amzn-RequestId"], message="the request id")


def test_boto3_reads_the_invoke_api_like_aws_lambda(functions, runtime):
    functions_eu = Functions(functions.tmp_path / "eu", region="eu-west-1")
    functions_eu.create("regional", "def handler(event, context):\n    raise ValueError(context.invoked_function_arn)\n")
    server = make_server("127.0.0.1", 0, invoke_api_app(runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = boto3.client("lambda", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{server.server_port}",
                              config=Config(retries={"total_max_attempts": 1}))
        response = client.invoke(FunctionName="regional", Payload=b"{}", LogType="Tail")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="regional-missing", Payload=b"{}")
    finally:
        server.shutdown()
        thread.join()

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert response["ExecutedVersion"] == "$LATEST"
    assert json.loads(response["Payload"].read())["errorMessage"] == \
        "arn:aws:lambda:eu-west-1:123456789012:function:regional"
    assert "REPORT RequestId" in base64.b64decode(response["LogResult"]).decode()


# ---------------------------------------------------------------------------
# no process left behind


def test_shutdown_stops_every_worker_and_removes_their_code(functions, aws, tmp_path):
    functions.create("where", """
        import os
        def handler(event, context):
            return {"pid": os.getpid(), "root": os.environ["LAMBDA_TASK_ROOT"]}
        """)
    functions.create("busy", """
        import time
        def handler(event, context):
            open(event["running"], "w").close()
            time.sleep(60)
        """, timeout=120)
    running = tmp_path / "busy-running"
    runtime = LambdaRuntime(endpoint_url=UNUSED_ENDPOINT, spare_workers=1)
    _, first = invoke_json(runtime, "where")
    busy_results = []
    busy = threading.Thread(target=lambda: busy_results.append(
        invoke_json(runtime, "busy", {"running": str(running)})))
    busy.start()
    wait_until(running.exists, message="the busy handler to start")
    wait_until(lambda: len(runtime.worker_pids()) == 3, message="two function workers and a spare")
    pids = runtime.worker_pids()

    runtime.shutdown()
    busy.join(10)

    assert first["pid"] in pids
    assert all(pid_is_gone(pid) for pid in pids)
    assert not os.path.exists(first["root"])
    assert runtime.worker_pids() == []
    [(result, error)] = busy_results
    assert result.function_error == "Unhandled"
    assert error == {"errorType": "Runtime.ExitError", "errorMessage":
                     f"RequestId: {result.request_id} Error: Runtime exited: the local Lambda runtime was shut down"}


def test_a_worker_exits_when_its_parent_goes_away_even_while_a_handler_is_busy(tmp_path):
    task_root = tmp_path / "task"
    task_root.mkdir()
    worker = subprocess.Popen([sys.executable, "-m", "crudstack.local.awslambda.worker", "--task-root", str(task_root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                              bufsize=0, env={"PATH": os.environ["PATH"]})
    try:
        reader = FrameReader(worker.stdout.fileno())
        deadline = time.monotonic() + 30
        assert reader.read(deadline)[0]["op"] == "ready"
        function = {"name": "f", "version": "$LATEST", "memory_size": 128, "log_group": "g", "log_stream": "s"}
        code = zip_bytes({"app.py": "import time\ndef handler(event, context):\n    time.sleep(120)\n"})
        write_all(worker.stdin.fileno(), encode_frame({"op": "init", "handler": "app.handler", "env": {},
                                                       "function": function}, code))
        assert reader.read(deadline)[0]["op"] == "init_done"
        assert (task_root / "app.py").exists()
        write_all(worker.stdin.fileno(), encode_frame({"op": "invoke", "id": "r1", "deadline": 0, "arn": "a"}, b"{}"))

        worker.stdin.close()  # what the kernel does to the pipe when the runtime's process dies

        assert worker.wait(timeout=10) == 0
        assert not task_root.exists()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
