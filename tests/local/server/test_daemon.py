"""The local AWS as a background process: start, reuse, refuse a taken port, stop, clean stale records.

Servers run tests.support.fake_server (the real server with a fake Lambda runtime) on a free
127.0.0.1 port; every test stops what it started.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crudstack.errors import LocalAwsError
from crudstack.local import daemon
from tests.support.local_server import ROOT, free_port, health, pid_alive, wait_until

FAKE = "tests.support.fake_server"


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    yield path
    daemon.stop(path, timeout=5)


def start(port, state_dir):
    return daemon.ensure_running(port, state_dir, concurrency=2, timeout=30, server_module=FAKE)


def test_ensure_running_starts_a_server_then_reuses_it(state_dir):
    port = free_port()
    endpoint = start(port, state_dir)
    assert endpoint == f"http://127.0.0.1:{port}"
    record = json.loads((state_dir / "server.json").read_text())
    assert record["port"] == port and pid_alive(record["pid"])
    assert {"pid", "port", "started_at", "log"} <= set(record)

    assert start(port, state_dir) == endpoint
    assert health(port)["pid"] == record["pid"]  # the same process, not a second one

    running = daemon.status(state_dir)
    assert (running["pid"], running["port"], running["healthy"]) == (record["pid"], port, True)


def test_the_server_outlives_the_process_that_started_it(state_dir):
    port = free_port()
    script = ("import sys; from pathlib import Path; from crudstack.local.daemon import ensure_running; "
              f"print(ensure_running({port}, Path(sys.argv[1]), timeout=30, server_module={FAKE!r}))")
    done = subprocess.run([sys.executable, "-c", script, str(state_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"http://127.0.0.1:{port}"
    assert health(port) is not None
    assert daemon.status(state_dir)["healthy"] is True


def test_a_port_taken_by_another_program_is_a_clear_error(state_dir):
    class NotUs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotUs)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    try:
        with pytest.raises(LocalAwsError) as error:
            start(port, state_dir)
    finally:
        other.shutdown()
        other.server_close()
    message = str(error.value)
    assert f"port {port}" in message and "another program" in message and "local.port" in message
    assert not (state_dir / "server.json").exists()


def test_a_port_held_by_the_local_aws_of_another_state_dir_is_refused(state_dir, tmp_path):
    port = free_port()
    start(port, state_dir)
    with pytest.raises(LocalAwsError) as error:
        start(port, tmp_path / "other-state")
    assert "another local AWS" in str(error.value) and str(state_dir.resolve()) in str(error.value)


def test_asking_for_another_port_than_the_running_server_is_refused(state_dir):
    port = free_port()
    start(port, state_dir)
    with pytest.raises(LocalAwsError) as error:
        start(free_port(), state_dir)
    assert f"already running on port {port}" in str(error.value)


def test_stop_terminates_the_server_and_removes_its_record(state_dir):
    port = free_port()
    start(port, state_dir)
    pid = daemon.status(state_dir)["pid"]
    worker = int((state_dir / "fake-worker.pid").read_text())

    assert daemon.stop(state_dir) is True
    assert not pid_alive(pid)
    assert not pid_alive(worker)
    assert not (state_dir / "server.json").exists()
    assert health(port) is None
    assert daemon.stop(state_dir) is False
    assert daemon.status(state_dir) is None


def test_a_stale_record_is_cleaned_up_and_a_new_server_started(state_dir):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state_dir.mkdir(parents=True)
    port = free_port()
    (state_dir / "server.json").write_text(json.dumps({"pid": gone.pid, "port": port, "started_at": "x", "log": "y"}))

    assert daemon.status(state_dir) is None
    assert not (state_dir / "server.json").exists()
    assert start(port, state_dir) == f"http://127.0.0.1:{port}"
    assert json.loads((state_dir / "server.json").read_text())["pid"] != gone.pid


def test_a_record_whose_pid_now_belongs_to_another_process_is_never_signalled(state_dir):
    state_dir.mkdir(parents=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (state_dir / "server.json").write_text(json.dumps({"pid": bystander.pid, "port": free_port()}))
        assert daemon.status(state_dir) is None
        assert daemon.stop(state_dir) is False
        assert bystander.poll() is None
        assert not (state_dir / "server.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_server_that_fails_at_start_up_is_reported_with_its_log(state_dir):
    with pytest.raises(LocalAwsError) as error:
        daemon.ensure_running(free_port(), state_dir, timeout=30, server_module="tests.local.no_such_module")
    assert "exited at start-up" in str(error.value)
    assert "No module named tests.local.no_such_module" in str(error.value)
    assert daemon.status(state_dir) is None
    assert set(os.listdir(state_dir)) == {"server.log", ".start.lock"}


EXIT_THREAD = {"x86_64": 60, "aarch64": 93}.get(os.uname().machine)  # exit(2): this thread only, not the group


@pytest.mark.skipif(EXIT_THREAD is None or not os.path.isdir("/proc/self/task"), reason="needs Linux /proc and a known syscall number")
def test_a_killed_server_whose_threads_are_still_exiting_is_not_taken_for_gone(state_dir):
    # After kill -9 the main thread of a busy server is a zombie before its other threads have
    # exited, and until they have, its listening socket is open: a new server must wait.
    script = ("import ctypes, threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); "
              f"time.sleep(0.2); ctypes.CDLL(None).syscall({EXIT_THREAD}, 0)")
    half_gone = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert wait_until(lambda: Path(f"/proc/{half_gone.pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z", timeout=10)

        assert daemon._dying(half_gone.pid) and daemon.alive(half_gone.pid)
        half_gone.kill()
        half_gone.wait(timeout=10)
        assert not daemon.alive(half_gone.pid)
    finally:
        if half_gone.poll() is None:
            half_gone.kill()
            half_gone.wait()


def test_the_log_the_daemon_opens_for_the_server_is_0600_whatever_the_umask(state_dir):
    # The daemon opened server.log in the calling process (provision: umask 022) before the server set
    # umask 077, so it was 0644 though every other file of the state dir is 0600 (state/private.py).
    import stat

    old = os.umask(0o022)
    try:
        start(free_port(), state_dir)
    finally:
        os.umask(old)
    for name in ("server.log", ".start.lock"):
        assert stat.S_IMODE(os.stat(state_dir / name).st_mode) == 0o600, name
    # provision marks the last recovery reported by rewriting recovery.json, in its own umask too
    (state_dir / "recovery.json").write_text(json.dumps({"reported": False, "dropped": ["x"]}))
    old = os.umask(0o022)
    try:
        assert daemon.unreported_recovery_problems(state_dir) == ["x"]
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(state_dir / "recovery.json").st_mode) == 0o600


def test_credentials_deleted_while_the_server_runs_get_a_restarted_server_not_invalid_client_token(state_dir,
                                                                                                    monkeypatch):
    # The server knows the credentials it read at its start only: after credentials.json was deleted,
    # provision and teardown made new ones and failed with "unexpected ClientError: InvalidClientTokenId".
    import functools
    from types import SimpleNamespace

    import boto3

    import crudstack.cli
    from crudstack.local.iam.credentials import CREDENTIALS_NAME, local_credentials

    port = free_port()
    endpoint = start(port, state_dir)
    first = json.loads((state_dir / "server.json").read_text())["pid"]
    (state_dir / CREDENTIALS_NAME).unlink()
    monkeypatch.setattr(daemon, "ensure_running", functools.partial(daemon.ensure_running, server_module=FAKE))
    config = SimpleNamespace(state_dir=state_dir, region="us-east-1", retry=SimpleNamespace(deadline_s=30, max_attempts=3),
                             local=SimpleNamespace(port=port, lambda_concurrency=2, behaviour="aws"))
    aws, connected = crudstack.cli.connect(config, "local")
    assert connected == endpoint
    assert not aws.paced   # moto throttles nothing: AWS's rates are kept only where something enforces them
    assert json.loads((state_dir / "server.json").read_text())["pid"] != first
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", **local_credentials(state_dir).for_boto3())
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_a_second_server_on_the_same_state_dir_refuses_to_start(tmp_path):
    # Started by hand (python -m crudstack.local.server) on another port, a second server loaded and then
    # appended to the same journal as the first: two writers of one state.
    from tests.support.local_server import start_server

    first = start_server(tmp_path / "state", module=FAKE)
    try:
        second = subprocess.run([sys.executable, "-m", FAKE, "--port", "0", "--state-dir", str(tmp_path / "state")],
                                cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                                check=False)
        assert second.returncode == 1, second.stderr
        assert f"pid {first.process.pid}" in second.stderr and "already serves" in second.stderr, second.stderr
        assert health(first.port)["pid"] == first.process.pid
    finally:
        first.stop()
