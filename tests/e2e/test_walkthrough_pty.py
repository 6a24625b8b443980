"""`python provision.py --walkthrough` in a pseudo-terminal, as a workshop participant runs it:
it waits for Enter before each step, creates nothing until then, and shows live progress.

The command runs as a subprocess against a moto server on 127.0.0.1 (`--target aws` with
AWS_ENDPOINT_URL and fake credentials), which the test starts and stops.
"""

from __future__ import annotations

import logging
import os
import sys

import boto3
import pexpect
import pytest
import requests
from moto.server import ThreadedMotoServer

from crudstack.config import ROOT

STEPS_RUN = ("1", "2", "3", "4", "5", "7")   # step 6 (test the API) has nothing to run


@pytest.fixture
def endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's state is per process: start from an empty account
    try:
        yield url
    finally:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        server.stop()


@pytest.fixture
def walkthrough(endpoint, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "AWS_PROFILE")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", TERM="xterm-256color", PYTHONUNBUFFERED="1")
    child = pexpect.spawn(sys.executable, [str(ROOT / "provision.py"), "--walkthrough", "--target", "aws",
                                           "--outputs", str(tmp_path / "outputs")],
                          cwd=str(ROOT), env=env, dimensions=(50, 160), encoding="utf-8", timeout=60)
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


def tables(endpoint: str) -> list[str]:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1").list_tables()["TableNames"]


def test_walkthrough_in_a_terminal_waits_for_enter_before_step_1_and_creates_nothing_until_then(walkthrough, endpoint):
    walkthrough.expect("In the console")
    walkthrough.expect("Table name: demo-ItemsTable")
    walkthrough.expect(r"dynamodb\.create_table\(TableName='demo-ItemsTable'")
    walkthrough.expect("Press Enter to run step 1")

    # Waiting: no step runs while nobody presses Enter, and nothing is created.
    assert walkthrough.expect([pexpect.TIMEOUT, "Step 1  DynamoDB table"], timeout=2) == 0
    assert tables(endpoint) == []

    walkthrough.sendline("")
    walkthrough.expect(r"Step 1  DynamoDB table \.+ created")
    walkthrough.expect("Press Enter to run step 2")
    assert tables(endpoint) == ["demo-ItemsTable"]


def test_walkthrough_in_a_terminal_shows_live_progress_then_each_outcome_and_completes(walkthrough):
    for number in STEPS_RUN:
        walkthrough.expect(f"Press Enter to run step {number}")
        walkthrough.sendline("")
        if number == "1":
            # The live line: spinner, step, what it does now.
            walkthrough.expect("Step 1  DynamoDB table: creating table demo-ItemsTable")
        if number == "3":
            walkthrough.expect("Step 3  Lambda functions: creating function demo-CreateItemFunction")
        walkthrough.expect(rf"Step {number}  [^\r\n]+ \.+ created")
        if number == "5":
            walkthrough.expect("Step 6 of 8: Test the API")
    walkthrough.expect(r"Done in [0-9.]+ s: \d+ added, 0 changed")   # one line of counts, no table repeating the steps
    walkthrough.expect("Invoke URL:")
    walkthrough.expect(pexpect.EOF)
    walkthrough.close()
    assert walkthrough.exitstatus == 0
