"""schemathesis against openapi.yaml on a running local stack: docs/api.md's command, as a user runs it.

Its settings are in schemathesis.toml (read from the repository root): every check, less the two
that do not apply to this API (see the file). The HAR report records every request it sent, so the
test can count them and look at each status.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys

from crudstack.config import ROOT

MIN_REQUESTS = 500


def schemathesis_command() -> list[str]:
    # `st` as docs/api.md has it, run by this interpreter so that no PATH is needed.
    return [sys.executable, "-m", "schemathesis.cli", "run", "openapi.yaml"]


def test_schemathesis_sends_at_least_500_requests_and_finds_no_5xx_and_no_schema_violation(contract_stack, tmp_path):
    report = tmp_path / "requests.har"

    run = subprocess.run(
        [*schemathesis_command(), "--url", contract_stack.invoke_url, "--seed", "20250131",
         "--report", "har", "--report-har-path", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env=contract_stack.env,
    )

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    entries = json.loads(report.read_text())["log"]["entries"]
    statuses = collections.Counter(entry["response"]["status"] for entry in entries)
    assert len(entries) >= MIN_REQUESTS, statuses
    assert not [status for status in statuses if status >= 500], statuses
    # It reached every kind of answer the contract has, not just the easy ones.
    assert {200, 201, 400, 404, 412} <= set(statuses), statuses
