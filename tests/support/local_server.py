"""The local AWS for tests and benchmarks: a server in a subprocess on 127.0.0.1, always stopped by its pid."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3


from crudstack.local import daemon

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class RunningServer:
    process: subprocess.Popen
    state_dir: Path
    endpoint: str
    port: int
    stdout: Path
    stderr: Path

    @property
    def log(self) -> str:
        return (self.state_dir / "server.log").read_text(encoding="utf-8")

    @property
    def credentials(self):
        """The server's own credentials: the control plane accepts no others but IAM users' and sessions'."""
        from crudstack.local.iam.credentials import local_credentials

        return local_credentials(self.state_dir)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **self.credentials.for_boto3())

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        return self.process.returncode


def start_server(state_dir: Path, module: str = "tests.support.fake_server", timeout: float = 30, concurrency: int = 4,
                 env: dict[str, str] | None = None) -> RunningServer:
    """Start `python -m module --port 0 ...` and wait until server.json names its port and /health answers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = state_dir / "stdout.txt", state_dir / "stderr.txt"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", "--state-dir", str(state_dir), "--lambda-concurrency", str(concurrency)],
            cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    server = RunningServer(process, state_dir, "", 0, stdout, stderr)
    deadline = time.monotonic() + timeout
    record = state_dir / "server.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {stderr.read_text()}")
        try:
            port = json.loads(record.read_text())["port"]
            server.port, server.endpoint = port, f"http://127.0.0.1:{port}"
            if health(port) is not None:
                return server
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"server did not become healthy within {timeout} s")


def health(port: int) -> dict | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/_localaws/health")
        response = conn.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    """Whether a process still runs (or still holds its files while it dies): the local AWS's own test."""
    return daemon.alive(pid)


def wait_until(predicate, timeout: float = 10, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def function_zip(source: str = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()
