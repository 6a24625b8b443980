"""A real local stack, built the way a user builds it: `python provision.py` in a subprocess;
and a moto server in a subprocess for the commands run with --target aws (tests/support/harness.py).

The stack's config is the repository's config.yaml with a free port and a temporary state dir,
and the commands run with every AWS_* variable removed from their environment, as on a fresh
machine with no AWS account. The local AWS they start listens on 127.0.0.1 only; the fixture
stops it (and every process it started) even when a test fails half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import yaml

from crudstack.config import ROOT
from crudstack.local.iam.credentials import local_credentials
from tests.support.harness import Baseline, Cli, MotoServer, baseline
from tests.support.local_server import free_port
from tests.support.local_server import pid_alive as alive

REGION = "us-east-1"


def descendants(pid: int) -> set[int]:
    """Every live process below pid (children, grandchildren...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@dataclass
class LocalStack:
    """The files and commands of one user's stack, and what its provision printed."""

    folder: Path
    config_path: Path
    port: int
    env: dict[str, str]
    stack: str = "e2e"
    provision_output: str = ""
    document: dict = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def invoke_url(self) -> str:
        return self.document["invoke_url"]

    def run(self, script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / script), "--config", str(self.config_path), *args],
                              cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def provision(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("provision.py", "--outputs", str(self.folder / "outputs"), *args)

    def server_pid(self) -> int | None:
        try:
            return json.loads((self.state_dir / "server.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            **local_credentials(self.state_dir).for_boto3())

    def name(self, base: str) -> str:
        return f"{self.stack}-{base}"

    def kill_everything(self) -> None:
        """Last resort after a test: SIGKILL the local AWS and whatever it started."""
        pid = self.server_pid()
        if pid and alive(pid):
            for child in descendants(pid):
                with _ignore_gone():
                    os.kill(child, signal.SIGKILL)
            with _ignore_gone():
                os.kill(pid, signal.SIGKILL)


class _ignore_gone:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is ProcessLookupError


def user_environment() -> dict[str, str]:
    """The test's environment without any AWS setting: the commands must not need one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("NO_COLOR",)}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1")
    return env


def make_stack(folder: Path, settings: dict | None = None) -> LocalStack:
    """A config.yaml for a stack in folder: the repository's defaults, a free port, a private state dir."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["stack"] = "e2e"
    data["target"] = "local"
    data.update(settings or {})
    # Whatever settings say, the stack gets a free port and a private state dir.
    data["local"] = {**data.get("local", {}), "port": free_port(), "state_dir": str(folder / "state")}
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return LocalStack(folder=folder, config_path=config_path, port=data["local"]["port"],
                      env=user_environment(), stack=data["stack"])


@contextlib.contextmanager
def provisioned(stack: LocalStack):
    """Provision `stack` as a user would; tear it down and stop its local AWS afterwards, whatever happens."""
    result = stack.provision()
    assert result.returncode == 0, f"provision.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    stack.provision_output = result.stdout
    stack.document = json.loads((stack.folder / "outputs" / "stack.json").read_text())
    try:
        yield stack
    finally:
        if stack.server_pid() and alive(stack.server_pid()):
            stack.run("teardown.py", "--yes", "--delete-data", timeout=120)
        stack.kill_everything()
        deadline = time.monotonic() + 10
        while stack.server_pid() and alive(stack.server_pid()) and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture(scope="module")
def deployed_stack(tmp_path_factory):
    """A provisioned local stack, shared by a module's tests; torn down and stopped afterwards."""
    with provisioned(make_stack(tmp_path_factory.mktemp("stack"))) as stack:
        yield stack


# Parallel requests the contract tests send to one function (20 PUTs at once): beyond
# local.lambda_concurrency they would wait for a worker in turn; a pool this size runs them all at
# once, the race the test of 20 PUTs with one ETag is about (tests/e2e/test_concurrency.py checks the waiting).
CONTRACT_CONCURRENCY = 24
# Two pages may call the contract stack: the preflight then allows "*", and the functions check the Origin.
CONTRACT_ORIGINS = ("http://localhost:3000", "https://app.example.com")
# The contract tests send bursts (1,000 creates from 8 threads, schemathesis, the stateful test) well over
# the default stage throttle (api.throttle: 100 requests/s, burst 200), which the local gateway enforces as
# AWS does; they check the items API, not throttling, so their stack gets the account's own limits.
CONTRACT_THROTTLE = {"rate_per_s": 10000, "burst": 5000}


@pytest.fixture(scope="session")
def contract_stack(tmp_path_factory):
    """One provisioned local stack for every module that checks the items API contract
    (provisioning costs seconds; CI time matters). Tests that need an empty table call empty_table()."""
    folder = tmp_path_factory.mktemp("contract")
    api = yaml.safe_load((ROOT / "config.yaml").read_text())["api"]
    api["cors"] = {"allowed_origins": list(CONTRACT_ORIGINS), "max_age_s": 600}
    api["throttle"] = CONTRACT_THROTTLE
    with provisioned(make_stack(folder, {"local": {"lambda_concurrency": CONTRACT_CONCURRENCY}, "api": api})) as stack:
        yield stack


def empty_table(stack: LocalStack) -> None:
    """Delete every item of the stack's table, straight through the local DynamoDB."""
    dynamodb = stack.client("dynamodb")
    table = stack.name("ItemsTable")
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="id"):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


# -- a moto server for --target aws runs (kill-and-resume, Ctrl-C, network loss, chaos) ---------------------------


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """One moto server on 127.0.0.1 for the session, reset between scenarios, always stopped."""
    with MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def stack_cli(moto_server, tmp_path_factory) -> Cli:
    return Cli(moto_server.endpoint, tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="session")
def clean(moto_server, stack_cli) -> Baseline:
    """A clean provision's state and call counts, measured once per session."""
    return baseline(moto_server, stack_cli)
