"""Ctrl-C and a lost network, with real signals and sockets: provision.py as a subprocess against a
moto server on loopback (through a proxy whose network the test can cut)."""

from __future__ import annotations

import re

import pytest
import yaml

from crudstack.config import ROOT
from tests.support.harness import Cli, sigint, sigkill
from tests.e2e.proxy import CuttableProxy
from tests.stack_state import differences, duplicates, inventory, state


# (AWS calls before Ctrl-C, the steps it may land in): of a clean run's 102 calls, step 1 makes the first 4,
# step 4 the 24th to the 66th, step 7 the 72nd to the last.
@pytest.mark.parametrize("calls", [2, 40, 70], ids=["early", "middle", "late"])
def test_ctrl_c_exits_130_naming_the_step_and_a_rerun_resumes(calls, moto_server, stack_cli, clean):
    moto_server.reset()

    stopped = stack_cli.run_until("provision", calls=calls, action=sigint)

    assert stopped.code == 130, stopped.stderr
    # Changes of several steps run at once (step 7 alongside steps 4 and 5): the stop names one of
    # them, the step of a change that was in flight.
    assert re.search(r"Interrupted during step \d \([^)]+\), at ", stopped.stderr), stopped.stderr
    assert "Nothing is lost: run the same command again and it resumes from there." in stopped.stderr
    assert "Traceback" not in stopped.stderr
    resumed = stack_cli.run("provision")
    assert resumed.code == 0, resumed.stderr
    assert differences(state(moto_server.client), clean.state) == []


def test_ctrl_c_while_python_is_still_loading_says_nothing_was_done(stack_cli):
    stopped = stack_cli.run_until("provision", calls=0, delay_s=0.05, action=sigint)

    assert stopped.code == 130
    assert "Traceback" not in stopped.stderr
    assert "Interrupted" in stopped.stderr


@pytest.fixture
def proxy(moto_server):
    running = CuttableProxy(moto_server.port).start()
    yield running
    running.stop()


@pytest.fixture
def short_deadline_cli(proxy, tmp_path) -> Cli:
    settings = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    settings["retry"] = {"deadline_s": 3, "max_attempts": 100}
    return Cli(proxy.endpoint, tmp_path / "cli", settings=settings)


def test_losing_the_network_mid_run_fails_within_the_deadline_clearly_and_a_rerun_converges(
        moto_server, proxy, short_deadline_cli, clean):
    moto_server.reset()

    lost = short_deadline_cli.run_until("provision", calls=45, action=lambda process: proxy.cut())

    assert lost.code == 1, lost.stderr
    assert lost.seconds_after_action < 3 + 2   # the 3 s retry deadline, plus one last attempt and exiting
    error = lost.stderr[lost.stderr.index("error: "):]
    assert "failed: EndpointConnectionError: Could not connect to the endpoint URL" in error
    assert "attempts over 3.0 s)" in error
    assert "What to do: the endpoint could not be reached: check the network" in error
    assert error.startswith("error: Step ") and "Traceback" not in lost.stderr
    proxy.restore()
    resumed = short_deadline_cli.run("provision")
    assert resumed.code == 0, resumed.stderr
    assert duplicates(inventory(moto_server.client)) == {}
    assert differences(state(moto_server.client), clean.state) == []


def test_a_provision_into_the_local_aws_killed_midway_is_finished_by_the_next_run(tmp_path):
    """The local target too: the first run starts the background local AWS and is killed; the next
    run finds that server, finishes the stack, and teardown stops the server."""
    from crudstack.local.daemon import status
    from tests.support.local_server import free_port

    settings = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    settings["local"]["port"] = free_port()
    cli = Cli(None, tmp_path / "cli", settings=settings, target="local")
    state_dir = tmp_path / "cli" / "state"
    try:
        killed = cli.run_until("provision", calls=30, action=sigkill)
        assert killed.code is None and status(state_dir) is not None   # the local AWS outlives the killed run

        resumed = cli.run("provision")
        assert resumed.code == 0, resumed.stderr
        again = cli.run("provision")
        assert "Nothing to change" in again.stdout
        gone = cli.run("teardown")
        assert gone.code == 0, gone.stderr
        assert "The local AWS held nothing else and was stopped." in gone.stdout
        assert status(state_dir) is None
    finally:
        from crudstack.local.daemon import stop

        stop(state_dir)
