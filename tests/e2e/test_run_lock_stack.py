"""Issue 21, finding 11, as a user meets it: `python provision.py` and `python teardown.py` of one local stack
started at the same time, as real processes. One waits for the other (crudstack/runlock.py) and says so;
neither meets a local AWS stopped under it. Two provisions at once still converge: the second changes nothing.
"""

from __future__ import annotations

import subprocess
import sys

from crudstack.config import ROOT
from tests.e2e.conftest import LocalStack, alive, make_stack


def start(stack: LocalStack, script: str, *args: str) -> subprocess.Popen:
    extra = ("--outputs", str(stack.folder / "outputs")) if script == "provision.py" else ()
    return subprocess.Popen([sys.executable, str(ROOT / script), "--config", str(stack.config_path), *extra, *args],
                            cwd=stack.folder, env=stack.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=240)
    return process.returncode, out, err


def test_two_provisions_converge_and_a_provision_during_a_teardown_waits_for_it(tmp_path):
    stack = make_stack(tmp_path / "stack")
    try:
        first, second = start(stack, "provision.py"), start(stack, "provision.py")
        runs = {first.pid: finish(first), second.pid: finish(second)}

        assert [code for code, _, _ in runs.values()] == [0, 0], runs
        waited = [pid for pid, (_, _, err) in runs.items() if "Waiting: provision.py" in err]
        assert len(waited) == 1, runs   # one ran, the other waited for it ...
        other = next(pid for pid in runs if pid != waited[0])
        assert f"(pid {other}, stack 'e2e'" in runs[waited[0]][2]
        assert "Nothing to change: every step is unchanged" in runs[waited[0]][1]   # ... and then changed nothing

        teardown = start(stack, "teardown.py", "--yes", "--delete-data")
        assert teardown.stdout.readline().startswith("Tearing down stack 'e2e'")   # it holds the lock now
        provision = start(stack, "provision.py")
        torn, built = finish(teardown), finish(provision)

        assert torn[0] == 0, torn
        assert "The local AWS held nothing else and was stopped." in torn[1]
        assert built[0] == 0, built
        assert f"Waiting: teardown.py --config {stack.config_path} --yes --delete-data (pid {teardown.pid}" in built[2]
        assert "EndpointConnectionError" not in built[1] + built[2] and "could not" not in built[2]
        assert stack.server_pid() and alive(stack.server_pid())   # the provision started the local AWS again
        assert stack.client("dynamodb").describe_table(TableName="e2e-ItemsTable")["Table"]["TableStatus"] == "ACTIVE"
    finally:
        if stack.server_pid() and alive(stack.server_pid()):
            stack.run("teardown.py", "--yes", "--delete-data", timeout=120)
        stack.kill_everything()
