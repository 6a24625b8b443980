"""Running provision.py / teardown.py as a user does, against a moto server on loopback, and
cutting them off: SIGKILL after a seeded number of AWS calls, SIGINT, or the network gone.

    MotoServer        `python -m moto.server` on 127.0.0.1:<free port>, reset between scenarios
    Cli               the two commands as subprocesses (--target aws, AWS_ENDPOINT_URL, fake credentials)
    kill_and_resume   one seeded kill point, then runs to completion, checked against a clean run
    kill_and_resume_adoption   the same for `provision --adopt` over a stack built as the console tutorial builds it
    chaos_cycle       one seeded provision + teardown with --chaos, checked the same way

Used by tests/e2e (a sampled subset in CI, the long variants marked slow) and by
bench/reliability.py, which prints the figures in RELIABILITY.md.

Where a run is cut off is chosen from a seed: the n-th AWS call (the commands print one line per
call with --verbose), plus a random few milliseconds so that some kills land inside a call.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3
import yaml

from tests.support.local_server import free_port
from tests.stack_state import differences, duplicates, inventory, left_over, state

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


class MotoServer:
    """A moto server in its own process (its state is process-global: sharing ours would mix it with mock_aws)."""

    def __init__(self, port: int | None = None, log: Path | None = None, *, as_console_left_it: bool = False):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        # as_console_left_it: with AWS's managed policies (the console tutorial attaches two) and TagResource on a
        # REST API's own ARN (which --adopt calls; moto's server routes only stage ARNs): what --adopt meets.
        self.as_console_left_it = as_console_left_it
        self.process: subprocess.Popen | None = None
        self._clients: dict[str, Any] = {}

    def start(self, timeout: float = 30) -> "MotoServer":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        server, env = ["-m", "moto.server"], None
        if self.as_console_left_it:
            server = ["-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from crudstack.local.patches import apigateway_tags, apigateway_update_method; "
                            "apigateway_tags.install(); apigateway_update_method.install(); from moto.server import main; main(sys.argv[1:])"]
            env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        self.process = subprocess.Popen([sys.executable, *server, "-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                        stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                self.reset()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on port {self.port} within {timeout} s")

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                                                  aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._clients[service]

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Outcome:
    code: int | None            # None: killed
    stdout: str
    stderr: str
    calls: int                  # AWS calls it reported (--verbose) before it ended
    seconds: float
    seconds_after_action: float = 0.0   # run_until: from the kill, signal or cut to the end

    @property
    def last_call(self) -> str:
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip().startswith("aws ")]
        return lines[-1] if lines else "(before the first call)"


class Cli:
    """provision.py and teardown.py against one endpoint, with a config of our own."""

    def __init__(self, endpoint: str | None, workdir: Path, *, settings: dict | None = None, env: dict | None = None,
                 target: str = "aws"):
        self.endpoint = endpoint
        self.target = target
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        data = settings or yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
        data.setdefault("local", {})["state_dir"] = str(workdir / "state")
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRUDSTACK_"))}, **FAKE_CREDENTIALS,
                    **({"AWS_ENDPOINT_URL": endpoint} if endpoint else {}), "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **(env or {})}

    def argv(self, command: str, *args: str) -> list[str]:
        extra = ["--outputs", str(self.workdir / "outputs")] if command == "provision" else ["--yes", "--delete-data"]
        return [sys.executable, str(ROOT / f"{command}.py"), "--config", str(self.config_path), "--target", self.target, *extra, *args]

    def run(self, command: str, *args: str, timeout: float = 300) -> Outcome:
        started = time.monotonic()
        done = subprocess.run(self.argv(command, "--verbose", *args), cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        # With --json the progress, --verbose's call lines included, goes to stderr.
        return Outcome(done.returncode, done.stdout, done.stderr, _calls(done.stdout + done.stderr), time.monotonic() - started)

    def run_until(self, command: str, *, calls: int, action: Callable[[subprocess.Popen], None], delay_s: float = 0.0,
                  timeout: float = 120, args: tuple[str, ...] = ()) -> Outcome:
        """Start the command; once it has reported `calls` AWS calls (0: at once) and delay_s has passed,
        do `action` to it (sigkill, sigint, or e.g. cut the network), then let it end."""
        started = time.monotonic()
        process = subprocess.Popen(self.argv(command, "--verbose", *args), cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        seen, lines = 0, []
        try:
            if calls > 0:
                for line in process.stdout:
                    lines.append(line)
                    if line.strip().startswith("aws "):
                        seen += 1
                        if seen >= calls:
                            break
            if delay_s:
                time.sleep(delay_s)
            acted = time.monotonic()
            if process.poll() is None:
                action(process)
            out, err = process.communicate(timeout=timeout)
        except BaseException:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        stdout = "".join(lines) + out
        code = None if process.returncode == -signal.SIGKILL else process.returncode
        return Outcome(code, stdout, err, _calls(stdout), time.monotonic() - started, time.monotonic() - acted)


def sigkill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)


def sigint(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)   # as Ctrl-C at a terminal does (to the command, not a whole group)


def _calls(stdout: str) -> int:
    return sum(1 for line in stdout.splitlines() if line.strip().startswith("aws "))


# -- scenarios ------------------------------------------------------------------------------------------------


@dataclass
class Baseline:
    """What a clean run leaves, and how many calls each command makes."""

    state: dict
    provision_calls: int
    teardown_calls: int


def baseline(server: MotoServer, cli: Cli) -> Baseline:
    server.reset()
    made = cli.run("provision")
    assert made.code == 0, made.stderr
    clean = state(server.client)
    gone = cli.run("teardown")
    assert gone.code == 0, gone.stderr
    assert left_over(inventory(server.client)) == {}
    return Baseline(clean, made.calls, gone.calls)


@dataclass
class Verdict:
    """One scenario's result; `problems` empty means it passed."""

    name: str
    seed: int
    cut_at: str = ""
    calls_before_cut: int = 0
    problems: list[str] = field(default_factory=list)
    duplicates: dict = field(default_factory=dict)
    orphans: dict = field(default_factory=dict)
    resumed: bool = True
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)

    def check(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok


def _check_converged(verdict: Verdict, server: MotoServer, base: Baseline) -> None:
    inv = inventory(server.client)
    verdict.duplicates = duplicates(inv)
    verdict.check(not verdict.duplicates, f"duplicates: {verdict.duplicates}")
    diff = differences(state(server.client), base.state)
    verdict.check(not diff, "state differs from a clean run's: " + "; ".join(diff[:5]))


def _check_torn_down(verdict: Verdict, server: MotoServer, cli: Cli) -> None:
    gone = cli.run("teardown")
    verdict.check(gone.code == 0, f"teardown exited {gone.code}: {gone.stderr[-500:]}")
    verdict.orphans = left_over(inventory(server.client))
    verdict.check(not verdict.orphans, f"orphans after teardown: {verdict.orphans}")


def kill_and_resume(server: MotoServer, cli: Cli, base: Baseline, command: str, seed: int) -> Verdict:
    """SIGKILL `command` at a seeded moment, run it again to completion, and check the account."""
    rng = random.Random(f"kill:{command}:{seed}")
    total = base.provision_calls if command == "provision" else base.teardown_calls
    calls, delay = rng.randint(0, total), rng.uniform(0, 0.015)
    verdict = Verdict(f"kill {command}", seed)
    started = time.monotonic()
    server.reset()
    if command == "teardown":
        made = cli.run("provision")
        if not verdict.check(made.code == 0, f"provision before the teardown exited {made.code}"):
            return verdict
    cut = cli.run_until(command, calls=calls, action=sigkill, delay_s=delay)
    verdict.cut_at = cut.last_call if cut.code is None else f"(finished before the kill, exit {cut.code})"
    verdict.calls_before_cut = cut.calls
    resumed = cli.run(command)
    verdict.resumed = verdict.check(resumed.code == 0, f"the resumed {command} exited {resumed.code}: {resumed.stderr[-800:]}")
    if command == "provision":
        _check_converged(verdict, server, base)
        again = cli.run("provision")
        verdict.check(again.code == 0 and "Nothing to change" in again.stdout, "a third provision still had changes to make")
        _check_torn_down(verdict, server, cli)
    else:
        verdict.orphans = left_over(inventory(server.client))
        verdict.check(not verdict.orphans, f"orphans after the resumed teardown: {verdict.orphans}")
        again = cli.run("teardown")
        verdict.check(again.code == 0 and "Nothing to delete" in again.stdout, "a second teardown still found something")
    verdict.seconds = time.monotonic() - started
    return verdict


def chaos_cycle(server: MotoServer, cli: Cli, base: Baseline, seed: int, rate: float = 0.2) -> Verdict:
    """provision then teardown, each with --chaos RATE (seeded), checked against the clean run."""
    verdict = Verdict(f"chaos {rate:g}", seed)
    server.reset()
    made = cli.run("provision", "--json", "--chaos", str(rate), "--chaos-seed", str(seed))
    verdict.seconds = made.seconds
    if not verdict.check(made.code == 0, f"provision exited {made.code}: {made.stderr[-800:]}"):
        return verdict
    doc = json.loads(made.stdout)
    verdict.figures = {"provision_s": made.seconds, "injected": doc["chaos"]["injected"], "retries": doc["aws_calls"]["retries"],
                       "calls": doc["chaos"]["calls"], "answers_lost": doc["chaos"]["answers_lost"]}
    verdict.check(doc["aws_calls"]["retries"] >= doc["chaos"]["injected"], "a fault was not retried")
    _check_converged(verdict, server, base)
    gone = cli.run("teardown", "--json", "--chaos", str(rate), "--chaos-seed", str(seed + 10_000))
    verdict.check(gone.code == 0, f"teardown exited {gone.code}: {gone.stderr[-800:]}")
    if gone.code == 0:
        down = json.loads(gone.stdout)
        verdict.figures.update(teardown_s=gone.seconds, injected_teardown=down["chaos"]["injected"], retries_teardown=down["aws_calls"]["retries"])
    verdict.orphans = left_over(inventory(server.client))
    verdict.check(not verdict.orphans, f"orphans after teardown: {verdict.orphans}")
    return verdict


def adoption_baseline(server: MotoServer, cli: Cli, build: Callable[[Callable[[str], Any]], Any]) -> Baseline:
    """What a clean `provision --adopt` of the console's stack (made by `build`) leaves, and its calls."""
    server.reset()
    build(server.client)
    made = cli.run("provision", "--adopt")
    assert made.code == 0, made.stderr
    return Baseline(state(server.client), made.calls, 0)


def kill_and_resume_adoption(server: MotoServer, cli: Cli, base: Baseline, seed: int,
                             build: Callable[[Callable[[str], Any]], Any]) -> Verdict:
    """SIGKILL `provision --adopt` at a seeded moment, run it again: the account ends as a clean adoption
    leaves it, nothing duplicated; a plain provision then has nothing to change; teardown leaves nothing."""
    rng = random.Random(f"kill:adopt:{seed}")
    calls, delay = rng.randint(0, base.provision_calls), rng.uniform(0, 0.015)
    verdict = Verdict("kill provision --adopt", seed)
    started = time.monotonic()
    server.reset()
    build(server.client)
    cut = cli.run_until("provision", calls=calls, action=sigkill, delay_s=delay, args=("--adopt",))
    verdict.cut_at = cut.last_call if cut.code is None else f"(finished before the kill, exit {cut.code})"
    verdict.calls_before_cut = cut.calls
    resumed = cli.run("provision", "--adopt")
    verdict.resumed = verdict.check(resumed.code == 0, f"the resumed adoption exited {resumed.code}: {resumed.stderr[-800:]}")
    _check_converged(verdict, server, base)
    again = cli.run("provision")
    verdict.check(again.code == 0 and "Nothing to change" in again.stdout, "a plain provision after the adoption had changes to make")
    _check_torn_down(verdict, server, cli)
    verdict.seconds = time.monotonic() - started
    return verdict
