"""How a run ends when it cannot finish: Ctrl-C lets the call in flight answer and stops before
the next one (exit 130, naming the step); a bug prints one line and leaves its traceback in a
log file whose path it prints. (The same with real signals and processes: tests/e2e.)"""

from __future__ import annotations

import re
import signal

import botocore.exceptions

from crudstack.cli import provision_main
from tests.functional.conftest import rest_apis


class Sent(list):
    """Operations whose request went out, in order (a before-send hook: after moto has answered it)."""

    def hook(self, event_name, **_):
        self.append(event_name.rsplit(".", 1)[1])
        if self and self[-1] in self.interrupt_at:
            self.interrupt_at.remove(self[-1])
            for _ in range(self.presses):
                signal.raise_signal(signal.SIGINT)   # Ctrl-C while this request is on the wire

    def __init__(self, interrupt_at: str = "", presses: int = 1):
        super().__init__()
        self.interrupt_at = [interrupt_at] if interrupt_at else []
        self.presses = presses
        self.event = ("before-send", self.hook)


def test_ctrl_c_during_a_call_lets_it_answer_then_stops_before_the_next_naming_the_step(cli, capsys, aws_clients, tmp_path):
    sent = Sent(interrupt_at="CreateRestApi")
    cli.hooks.append(sent.event)

    code, _, err = cli(provision_main, "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 130
    # Calls of other changes may have been on the wire too (they run at once) and answer; nothing that
    # needed the REST API started after it.
    assert "CreateResource" not in sent[sent.index("CreateRestApi"):]
    assert len(rest_apis(aws_clients, "demo-ItemsApi")) == 1    # and it did its work
    # Python runs the signal handler on the main thread, which may only get to it once moto (in this
    # process) has answered: then nothing is in flight and it stops at once, without the "stopping once
    # the calls in flight have answered" line. Either way the run ends here, naming where it was.
    assert re.search(r"Interrupted during step \d \([^)]+\), at [^\n]+\.", err)
    assert "run the same command again and it resumes from there" in err
    assert "Traceback" not in err
    code, _, _ = cli(provision_main, "--outputs", str(tmp_path / "out"), capsys=capsys)
    assert code == 0 and len(rest_apis(aws_clients, "demo-ItemsApi")) == 1


def test_a_second_ctrl_c_stops_at_once(cli, capsys, tmp_path):
    sent = Sent(interrupt_at="CreateTable", presses=2)
    cli.hooks.append(sent.event)

    code, _, err = cli(provision_main, "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 130
    assert "CreateTable" in sent and "CreateFunction" not in sent   # stopped long before step 3 could start
    assert re.search(r"Interrupted during step \d \([^)]+\), at [^\n]+\.", err)


def test_ctrl_c_while_waiting_to_retry_stops_at_once(cli, capsys, tmp_path, inject, monkeypatch):
    import crudstack.cli

    unreachable = inject("CreateRole", botocore.exceptions.EndpointConnectionError(endpoint_url="https://iam.amazonaws.com/"))
    cli.hooks.append(unreachable.event)
    real_connect = crudstack.cli.connect

    def connect(config, target):
        aws, endpoint = real_connect(config, target)
        aws.sleep = lambda seconds: signal.raise_signal(signal.SIGINT)   # Ctrl-C during the backoff
        return aws, endpoint

    monkeypatch.setattr(crudstack.cli, "connect", connect)

    code, _, err = cli(provision_main, "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 130
    # Stopped in the backoff: the Ctrl-C is handled on the main thread, so at most the retry already
    # under way goes out.
    assert 1 <= unreachable.seen <= 2
    assert re.search(r"Interrupted during step \d \([^)]+\), at [^\n]+\.", err)


def test_an_unexpected_error_prints_one_line_and_leaves_its_traceback_in_the_state_dir(cli, settings, capsys, tmp_path):
    settings["local"]["state_dir"] = str(tmp_path / "state")

    def bug(model, **_):
        if model.name == "CreateTopic":
            raise ValueError("an answer we did not expect")

    cli.hooks.append(("before-call", bug))

    code, _, err = cli(provision_main, "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 1
    log = tmp_path / "state" / "last-error.log"
    assert ("error: unexpected ValueError: an answer we did not expect during step 7 (Monitoring: logs, alerts, alarms), "
            "at SNS topic demo-ItemsApiAlerts") in err
    assert f"The full traceback is in {log}; please report it." in err
    assert "Traceback" not in err
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "ValueError: an answer we did not expect" in text
    assert "config: stack 'demo', target 'local'" in text
