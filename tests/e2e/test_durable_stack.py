"""A local stack a user can leave running for a week: its state survives SIGKILL, a damaged journal
is recovered around, and its alarms fire and clear with a mail in the outbox each time.

Everything runs as a user runs it: `python provision.py`, `python -m crudstack.local ...` in
subprocesses, HTTP to the printed invoke URL. Each test has its own stack, torn down at the end.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from crudstack.config import ROOT
from crudstack.local.state import journal
from crudstack.local.sns.outbox import Outbox
from tests.e2e.conftest import CONTRACT_THROTTLE, LocalStack, alive, make_stack
from tests.support.local_server import wait_until

DEFAULTS = yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def new_stack(tmp_path):
    """new_stack(**top-level settings) -> a provisioned LocalStack; stopped and cleaned up after the test."""
    made: list[LocalStack] = []

    def make(**settings) -> LocalStack:
        stack = make_stack(tmp_path / f"stack{len(made)}", settings)
        made.append(stack)
        result = stack.provision()
        assert result.returncode == 0, f"provision.py failed:\n{result.stdout}\n{result.stderr}"
        stack.document = json.loads((stack.folder / "outputs" / "stack.json").read_text())
        return stack

    yield make
    for stack in made:
        if stack.server_pid() and alive(stack.server_pid()):
            stack.run("teardown.py", "--yes", "--delete-data", timeout=120)
        stack.kill_everything()


def sigkill(stack: LocalStack) -> None:
    """Crash the local AWS as `kill -9` does: its process only, no clean shutdown."""
    pid = stack.server_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def create_items(url: str, count: int) -> list[str]:
    def create(i):
        answer = requests.post(f"{url}/items", json={"name": f"item {i}", "description": "kept"}, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()["item"]["id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(count)))


def readable(url: str, ids: list[str]) -> list[str]:
    """The ids GET /items/{id} answers 200 for."""

    def get(item_id):
        return item_id if requests.get(f"{url}/items/{item_id}", timeout=30).status_code == 200 else None

    with ThreadPoolExecutor(8) as pool:
        return [i for i in pool.map(get, ids) if i]


def functions(stack: LocalStack) -> dict[str, dict]:
    lam = stack.client("lambda")
    return {f["FunctionName"]: lam.get_function(FunctionName=f["FunctionName"])["Configuration"]
            for f in lam.list_functions()["Functions"]}


def test_500_items_made_through_the_invoke_url_survive_sigkill_and_provision_finds_nothing_to_change(new_stack):
    # 500 creates from 8 threads go faster than the default stage throttle (100/s, burst 200) the local
    # gateway enforces: this test is about durability, so its stack gets the account's limits.
    stack = new_stack(api={**DEFAULTS["api"], "throttle": CONTRACT_THROTTLE})
    url = stack.invoke_url
    ids = create_items(url, 500)
    before = functions(stack)
    api_id = stack.document["resources"]["rest_api"]["id"]

    sigkill(stack)
    again = stack.provision("--json")

    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert {change["action"] for step in document["steps"] for change in step["changes"]} == {"unchanged"}, [
        c for step in document["steps"] for c in step["changes"] if c["action"] != "unchanged"]
    assert document["aws_calls"]["writes"] == 0
    assert document["resources"]["rest_api"]["id"] == api_id and document["invoke_url"] == url
    assert functions(stack) == before
    assert sorted(readable(url, ids)) == sorted(ids)
    assert stack.client("dynamodb").scan(TableName=stack.name("ItemsTable"), Select="COUNT")["Count"] == 500


def test_a_truncated_last_record_is_reported_and_everything_before_it_is_intact(new_stack):
    stack = new_stack()
    ids = create_items(stack.invoke_url, 20)
    sigkill(stack)
    last = journal.list_segments(stack.state_dir / "data")[-1][1]
    with open(last, "ab") as handle:  # the first bytes of a record the crash cut off
        handle.write(journal.encode({"lsn": 99_999, "kind": "http"}, b'{"TableName": "e2e-ItemsTable"}')[:33])

    again = stack.provision()

    assert again.returncode == 0, again.stderr
    assert "the local AWS restarted from its saved state and had to leave out damaged data" in again.stderr
    assert f"{last.name}: 33 bytes at offset" in again.stderr and "cut short" in again.stderr
    assert "Nothing to change: every step is unchanged" in again.stdout
    assert sorted(readable(stack.invoke_url, ids)) == sorted(ids)
    shown = _module(stack, "status")
    assert shown.returncode == 0 and "cut short" in shown.stdout
    # shown once: the next provision has nothing to report
    assert "damaged data" not in stack.provision().stderr


def test_wipe_asks_for_confirmation_then_the_next_provision_starts_from_nothing(new_stack):
    stack = new_stack()
    api_id = stack.document["resources"]["rest_api"]["id"]

    refused = _module(stack, "wipe")
    assert refused.returncode == 2 and "pass --yes to confirm" in refused.stderr
    wiped = _module(stack, "wipe", "--yes")

    assert wiped.returncode == 0, wiped.stderr
    assert "Stopped the local AWS" in wiped.stdout and not (stack.state_dir / "data").exists()
    again = stack.provision("--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resources"]["rest_api"]["id"] != api_id


def test_a_failing_function_drives_its_errors_alarm_to_alarm_and_back_to_ok_with_a_mail_each_time(new_stack):
    monitoring = copy.deepcopy(DEFAULTS["monitoring"])
    monitoring["alert_email"] = "ops@example.com"
    monitoring["alarms"]["period_s"] = 10
    stack = new_stack(monitoring=monitoring)
    alarm = stack.name("CreateItemFunction-Errors")
    cloudwatch = stack.client("cloudwatch")
    outbox = Outbox(stack.state_dir / "outbox")

    def state():
        return cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]

    def mails(subject_start):
        return [m for m in outbox.messages() if m.subject.startswith(f'{subject_start}: "{alarm}"')]

    assert wait_until(lambda: state()["StateValue"] == "OK", 20)  # its first evaluation: no errors yet
    broken = _with_handler(stack, "create_item.no_such_handler")  # a deploy that breaks the function
    assert _run(stack, ROOT / "provision.py", "--config", str(broken), "--outputs", str(stack.folder / "outputs")).returncode == 0

    failed = requests.post(f"{stack.invoke_url}/items", json={"name": "x"}, timeout=30)
    assert failed.status_code == 502
    started = time.monotonic()
    assert wait_until(lambda: state()["StateValue"] == "ALARM", 30)
    assert time.monotonic() - started <= 10 + 5 + 2  # within one 10 s window (plus settling and a tick)

    fired = wait_until(lambda: mails("ALARM"), 10)
    assert len(fired) == 1
    assert f'Alarm "{alarm}"' in fired[0].body
    assert "has entered the ALARM state, because \"Threshold Crossed: 1 out of the last 1 datapoints [1.0" in fired[0].body
    listed = _module(stack, "outbox")
    assert f'ALARM: "{alarm}" in US East (N. Virginia)' in listed.stdout

    fixed = stack.provision()  # config.yaml has the right handler again
    assert fixed.returncode == 0, fixed.stderr
    for _ in range(3):
        assert requests.post(f"{stack.invoke_url}/items", json={"name": "ok"}, timeout=30).status_code == 201
    assert wait_until(lambda: state()["StateValue"] == "OK", 30)
    cleared = wait_until(lambda: [m for m in mails("OK") if m.path.name > fired[0].path.name], 10)
    assert len(cleared) == 1 and "- State Change:               ALARM -> OK" in cleared[0].body
    history = cloudwatch.describe_alarm_history(AlarmName=alarm, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history][:2] == ["Alarm updated from ALARM to OK", "Alarm updated from OK to ALARM"]


def _run(stack: LocalStack, *command):
    return subprocess.run([sys.executable, *map(str, command)], cwd=ROOT, env=stack.env, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def _module(stack: LocalStack, *args: str):
    return _run(stack, "-m", "crudstack.local", *args, "--config", stack.config_path)


def _with_handler(stack: LocalStack, handler: str):
    data = yaml.safe_load(stack.config_path.read_text())
    data["lambda"]["functions"]["CreateItemFunction"]["handler"] = handler
    path = stack.folder / "config-broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
