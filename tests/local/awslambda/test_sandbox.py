"""What a function can see (issue 21, finding 8): it starts in its own task root with Lambda's
environment, and, when the local AWS runs as root, as a user of its own that can read neither other
functions' task roots nor files only root may read."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
import zipfile

import pytest

from crudstack.local.awslambda.environment import function_environment, worker_base_environment
from crudstack.local.awslambda.models import FunctionSpec
from crudstack.local.awslambda.process import WorkerProcess

ENDPOINT = "http://127.0.0.1:9"
SYSTEM_PYTHON = "/usr/bin/python3"
# Lambda's defined runtime environment variables
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime),
# and the local ones that keep a function off real AWS (awslambda/environment.py forced_environment).
LAMBDA_NAMES = {"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
                "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "LANG", "PATH", "LD_LIBRARY_PATH",
                "PYTHONPATH", "TZ"}
LOCAL_NAMES = {"AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED",
               "AWS_SECURITY_TOKEN"}

HANDLER = '''
import os

STARTED_IN = os.getcwd()


def readable(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        return True
    except OSError:
        return False


def handler(event, context):
    return {"uid": os.getuid(), "started_in": STARTED_IN, "task_root": os.environ["LAMBDA_TASK_ROOT"],
            "readable": {path: readable(path) for path in event["paths"]}}
'''


def spec(name: str) -> FunctionSpec:
    return FunctionSpec(account_id="123456789012", region="us-east-1",
                        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}", name=name,
                        version="$LATEST", handler="app.handler", runtime="python3.11", timeout=30, memory_size=128,
                        environment=(), code_sha=name, package_type="Zip", reserved_concurrency=None)


def code() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return buffer.getvalue()


def start(python: str = sys.executable) -> WorkerProcess:
    other_python = {} if python == sys.executable else {"python": python}
    worker = WorkerProcess(env=worker_base_environment(ENDPOINT), preload=(), all_packages=True,
                           on_output=lambda worker, lines: None, **other_python)
    worker.wait_ready(time.monotonic() + 30)
    return worker


def run(worker: WorkerProcess, name: str, paths: list[str]) -> dict:
    deadline = time.monotonic() + 30
    meta, body = worker.init(spec=spec(name), log_stream="s", env=function_environment(spec(name), "s", ENDPOINT),
                             code=code(), deadline=deadline, logs=[])
    assert meta["op"] == "init_done", body
    meta, body = worker.invoke(request_id="r1", payload=json.dumps({"paths": paths}).encode(), invoked_arn="a",
                               deadline=deadline, deadline_ms=int(deadline * 1000), client_context=None, logs=[])
    assert meta["ok"], body
    return json.loads(body)


def test_a_worker_starts_in_its_own_task_root_with_lambdas_environment_only():
    worker = start()
    try:
        assert os.path.realpath(f"/proc/{worker.pid}/cwd") == os.path.realpath(worker.task_root)
        with open(f"/proc/{worker.pid}/environ", "rb") as handle:
            environ = dict(item.decode().split("=", 1) for item in handle.read().split(b"\0") if item)
        assert environ["LAMBDA_TASK_ROOT"] == worker.task_root
        assert set(environ) <= LAMBDA_NAMES | LOCAL_NAMES, set(environ) - LAMBDA_NAMES - LOCAL_NAMES
        assert stat.S_IMODE(os.stat(worker.task_root).st_mode) == 0o700
        answer = run(worker, "started-here", [])
        assert os.path.realpath(answer["started_in"]) == os.path.realpath(answer["task_root"]) == \
            os.path.realpath(worker.task_root)
    finally:
        worker.kill()


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                    reason="privileges are dropped only by a server running as root, with a Python others can read")
def test_started_by_root_each_worker_runs_as_a_user_of_its_own_and_reads_no_other_task_root(tmp_path):
    secret = tmp_path / "state" / "credentials.json"  # as the local AWS keeps its own: 0600 in a 0700 folder
    secret.parent.mkdir(mode=0o700)
    secret.write_text("{}")
    secret.chmod(0o600)
    first, second = start(SYSTEM_PYTHON), start(SYSTEM_PYTHON)
    try:
        assert first.user["dropped"] and second.user["dropped"], (first.user, second.user)
        mine = run(first, "first", [second.task_root, str(secret), first.task_root])
        theirs = run(second, "second", [first.task_root])
        assert mine["uid"] != 0 and theirs["uid"] != 0 and mine["uid"] != theirs["uid"]
        assert mine["readable"] == {second.task_root: False, str(secret): False, first.task_root: True}
        assert theirs["readable"] == {first.task_root: False}
    finally:
        first.kill()
        second.kill()
    assert not os.path.exists(first.task_root) and not os.path.exists(second.task_root)


def _python_others_can_read() -> bool:
    from crudstack.local.awslambda.worker import _readable_by_others

    return _readable_by_others(os.path.dirname(os.__file__))


@pytest.mark.skipif(os.geteuid() != 0 or _python_others_can_read(),
                    reason="shows the fallback: started by root, with a Python other users cannot read (pyenv in /root)")
def test_started_by_root_with_a_python_others_cannot_read_a_worker_stays_root_and_says_why():
    worker = start()
    try:
        assert worker.user["dropped"] is False and "cannot be read by other users" in worker.user["why"]
        assert run(worker, "fallback", [])["uid"] == 0
    finally:
        worker.kill()


LINGERER = '''
import os
import subprocess


def handler(event, context):
    # A session of its own: out of the worker's process group, so killpg does not end it.
    child = subprocess.Popen(["sleep", "120"], start_new_session=True)
    return {"uid": os.getuid(), "pid": child.pid}
'''


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                    reason="privileges are dropped only by a server running as root, with a Python others can read")
def test_a_process_a_function_left_behind_is_ended_before_its_user_id_runs_another_function():
    # Sandbox user ids are reused (the last given back is the next taken): a daemon a handler left behind
    # with setsid outlived its worker, and the next function's worker ran as the same user, so the
    # daemon could read and rewrite that function's task root (its code) and signal it.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", LINGERER)
    first = start(SYSTEM_PYTHON)
    try:
        assert first.user["dropped"], first.user
        deadline = time.monotonic() + 30
        meta, body = first.init(spec=spec("lingers"), log_stream="s", env=function_environment(spec("lingers"), "s", ENDPOINT),
                                code=buffer.getvalue(), deadline=deadline, logs=[])
        assert meta["op"] == "init_done", body
        meta, body = first.invoke(request_id="r1", payload=b"{}", invoked_arn="a", deadline=deadline,
                                  deadline_ms=int(deadline * 1000), client_context=None, logs=[])
        assert meta["ok"], body
        left = json.loads(body)
        assert os.stat(f"/proc/{left['pid']}").st_uid == left["uid"] != 0
    finally:
        first.kill()
    second = start(SYSTEM_PYTHON)
    try:
        for _ in range(100):  # SIGKILL is delivered at once; the zombie is reaped by init a moment later
            if not os.path.exists(f"/proc/{left['pid']}"):
                break
            with open(f"/proc/{left['pid']}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.02)
        else:
            raise AssertionError(f"pid {left['pid']} (uid {left['uid']}) outlived its worker; the next worker runs "
                                 f"as uid {second.user['uid']}")
    finally:
        second.kill()
        try:
            os.kill(left["pid"], 9)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                    reason="privileges are dropped only by a server running as root, with a Python others can read")
def test_a_process_left_running_as_a_sandbox_user_by_an_earlier_server_is_ended_before_that_id_is_used():
    # A server killed with -9 reaps nothing: a handler's leftover kept its sandbox uid, which the next
    # server's first worker takes again.
    import subprocess

    from crudstack.local.awslambda.process import SANDBOX_USERS

    uid = SANDBOX_USERS._free[-1]  # the next one taken
    leftover = subprocess.Popen(["sleep", "120"], user=uid, group=uid, extra_groups=[], start_new_session=True)
    worker = start(SYSTEM_PYTHON)
    try:
        assert worker.sandbox_uid == uid
        assert leftover.wait(timeout=10) == -9
    finally:
        worker.kill()
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
