"""One provision or teardown at a time (issue 21, finding 11; crudstack/runlock.py), with real processes:
a holder process takes the lock as a run does, and provision.py / teardown.py are run beside it.

A provision that meets the lock says who holds it and waits; after the bound (CRUDSTACK_LOCK_WAIT_S) it
exits 5 before any AWS call. tests/e2e/test_run_lock_stack.py runs real provisions and teardowns at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crudstack.config import ROOT
from crudstack.errors import ConfigError, StackBusy
from crudstack.runlock import acquire, lock_path, wait_limit
from tests.support.local_server import free_port

HOLDER = """
import sys
from pathlib import Path
from crudstack.runlock import acquire
sys.argv = ["teardown.py", "--yes", "--config", "theirs.yaml"]   # what the message should name
lock = acquire(Path(sys.argv_path), what="the local AWS", stack="demo")
print("held", flush=True)
sys.stdin.read()   # until the test closes our stdin
lock.release()
"""


def config_file(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(stack="locktest", target="local")
    data["local"] = {"port": free_port(), "state_dir": str(tmp_path / "state")}
    data["retry"] = {"deadline_s": 1, "max_attempts": 1}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def environment(wait_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # --target aws runs meet a closed loopback port, never AWS, if they get as far as a call
    env.update(CRUDSTACK_LOCK_WAIT_S=str(wait_s), NO_COLOR="1", PYTHONUNBUFFERED="1",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing")
    return env


@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of the local AWS in tmp_path/state, as a teardown in flight would."""
    def hold(path: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER.replace("sys.argv_path", repr(str(path)))],
                                   cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    started: list[subprocess.Popen] = []
    yield hold
    for process in started:
        process.stdin.close()
        process.wait(timeout=10)


def run(script: str, config: Path, *args: str, wait_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), "--config", str(config), *args], cwd=config.parent,
                          env=environment(wait_s), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("script", "args", "target"), [
    ("provision.py", (), "local"), ("teardown.py", ("--yes",), "local"), ("provision.py", ("--target", "aws"), "aws"),
    ("teardown.py", ("--yes", "--target", "aws"), "aws")])
def test_a_run_beside_one_in_flight_says_who_holds_the_lock_and_exits_5_before_any_aws_call(
        script, args, target, tmp_path, holder):
    config = config_file(tmp_path)
    held = holder(lock_path(tmp_path / "state", target, "locktest", "us-east-1"))

    result = run(script, config, *args, wait_s=1)

    assert result.returncode == 5, result.stdout + result.stderr
    assert f"Waiting: teardown.py --yes --config theirs.yaml (pid {held.pid}, stack 'demo', started " in result.stderr
    assert f"still holds {lock_path(tmp_path / 'state', target, 'locktest', 'us-east-1')} after 1 s" in result.stderr
    assert f"kill {held.pid}" in result.stderr
    assert not (tmp_path / "state" / "server.json").exists()   # no local AWS was started: no AWS call at all
    assert "Traceback" not in result.stderr


def test_a_run_that_waited_goes_on_once_the_other_one_finishes(tmp_path, holder):
    config = config_file(tmp_path)
    held = holder(lock_path(tmp_path / "state", "local", "locktest", "us-east-1"))
    waiting = subprocess.Popen([sys.executable, str(ROOT / "teardown.py"), "--config", str(config), "--yes"],
                               cwd=tmp_path, env=environment(60), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert waiting.stderr.readline().startswith(f"Waiting: teardown.py --yes --config theirs.yaml (pid {held.pid}")
        assert waiting.poll() is None
        held.stdin.close()   # the teardown in flight finishes
        held.wait(timeout=10)
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()

    assert waiting.returncode == 0, out + err
    assert "The local AWS is not running: there is no local stack to tear down." in out


def test_plans_share_the_lock_with_each_other_but_not_with_a_run_that_changes_things(tmp_path):
    path = tmp_path / "run.lock"
    said: list[str] = []
    first = acquire(path, what="x", stack="demo", shared=True, wait_s=0, say=said.append)
    second = acquire(path, what="x", stack="demo", shared=True, wait_s=0, say=said.append)
    with pytest.raises(StackBusy):
        acquire(path, what="x", stack="demo", wait_s=0, say=said.append)
    first.release()
    second.release()
    acquire(path, what="x", stack="demo", wait_s=0, say=said.append).release()

    assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_lock_whose_holder_died_does_not_block(tmp_path):
    path = tmp_path / "state" / "local-aws.lock"
    killed = subprocess.Popen([sys.executable, "-c", HOLDER.replace("sys.argv_path", repr(str(path)))], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait()
    said: list[str] = []

    acquire(path, what="x", stack="demo", wait_s=0, say=said.append).release()   # no wait at all, or StackBusy

    assert said == []


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_wait_that_is_not_a_number_of_seconds_is_refused(raw):
    with pytest.raises(ConfigError, match="CRUDSTACK_LOCK_WAIT_S: found"):
        wait_limit({"CRUDSTACK_LOCK_WAIT_S": raw})


@pytest.mark.parametrize("script", ["provision.py", "teardown.py"])
def test_a_state_dir_that_cannot_hold_the_lock_is_a_config_error_not_a_crash(script, tmp_path):
    config = config_file(tmp_path)
    (tmp_path / "state").write_text("a file where local.state_dir should be a folder\n")

    result = run(script, config, "--target", "aws", "--plan", wait_s=1)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "unexpected" not in result.stderr
    assert f"local.state_dir: cannot make the lock file {tmp_path / 'state' / 'aws-us-east-1-locktest.lock'}" in result.stderr
