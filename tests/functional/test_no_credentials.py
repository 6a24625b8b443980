"""--target aws on a machine with no AWS credentials at all: a clear error naming what is missing and what to do,
the exit code of other AWS-side errors, and no traceback file (it is not a bug).

The command runs in a subprocess whose HOME is an empty folder and whose environment holds no AWS_* credentials or
profile, as on a fresh machine. botocore's last place to look is the instance metadata service; it is pointed at a
fake one on loopback that has no role (404), so the lookup never leaves this machine (tests/test_guard.py)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.unit.test_config import settings

ROOT = Path(__file__).resolve().parents[2]


class NoRole(http.server.BaseHTTPRequestHandler):
    """An instance metadata service of a machine with no instance role: every path is 404."""

    asked: list[str] = []

    def _none(self):
        self.asked.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = _none

    def log_message(self, *args):
        pass


@pytest.fixture
def metadata_without_a_role():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoRole)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    NoRole.asked = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("command", [["provision.py"], ["teardown.py", "--yes"]])
def test_no_credentials_at_all_is_a_clear_error_with_what_to_do_and_no_traceback_file(tmp_path, metadata_without_a_role, command):
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    data = settings()
    data["local"]["state_dir"] = str(state)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    # Nothing of this machine's AWS set-up: no AWS_* variable but the metadata service's address, on loopback.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(home), AWS_EC2_METADATA_SERVICE_ENDPOINT=metadata_without_a_role)

    done = subprocess.run([sys.executable, str(ROOT / command[0]), *command[1:], "--config", str(config), "--target", "aws"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert "unexpected" not in done.stderr
    assert "--target aws found no AWS credentials" in done.stderr
    assert "What to do: run aws configure" in done.stderr and "set AWS_PROFILE" in done.stderr
    assert "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in done.stderr
    assert done.returncode == 1   # as any AWS-side error (DeploymentError)
    assert not (state / "last-error.log").exists()
    assert NoRole.asked   # botocore did look for an instance role, on loopback, and found none
