"""Start, find and stop the embedded local AWS (crudstack.local.server) as a background process.

provision.py calls `ensure_running`, teardown.py `status` and `stop`. The server records itself in
<state-dir>/server.json (pid, port, started_at, log) once it listens, and removes the record when
it stops cleanly; a record whose process is gone (a crash, a reboot) is stale and removed here.

The server keeps its state in <state-dir>/data across stops and crashes (crudstack.local.state.durable)
and writes what each start recovered to <state-dir>/recovery.json; `unreported_recovery_problems`
hands provision.py what it had to drop, once.

A running server is trusted only when its health check (/_localaws/health) answers with the pid
and state dir of the record, so a recycled pid or another program on the port is never mistaken
for it, and never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from crudstack.errors import LocalAwsError
from crudstack.local.server.record import HEALTH_PATH, LOG_NAME, RECORD_NAME, RECOVERY_NAME
from crudstack.local.state.exceptions import StateUnsafe
from crudstack.local.state.private import open_private, private_folder

HOST = "127.0.0.1"
SERVER_MODULE = "crudstack.local.server"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ensure_running(port: int, state_dir: Path, *, concurrency: int = 10, timeout: float = 20,
                   server_module: str = SERVER_MODULE) -> str:
    """The endpoint URL (http://127.0.0.1:PORT) of a healthy local AWS for state_dir, started if needed.

    Raises LocalAwsError when the port is held by another program, when this state dir's server
    runs on another port, or when a new server does not become healthy within `timeout` seconds.
    """
    try:
        state_dir = private_folder(Path(state_dir).resolve())  # 0700: it holds secrets (state/private.py)
    except StateUnsafe as exc:
        raise LocalAwsError(str(exc)) from None
    with _start_lock(state_dir):  # two provision runs at once start one server
        return _ensure_running(port, state_dir, concurrency, timeout, server_module)


def _ensure_running(port: int, state_dir: Path, concurrency: int, timeout: float, server_module: str) -> str:
    running = status(state_dir)
    if running is not None:
        if running["port"] != port:
            raise LocalAwsError(
                f"the local AWS for {state_dir} is already running on port {running['port']} (pid {running['pid']}), "
                f"not on port {port}. Stop it first (python teardown.py --yes, or kill {running['pid']}), "
                f"or set local.port: {running['port']} in config.yaml.")
        if not running["healthy"] and not _wait_healthy(port, running["pid"], timeout):
            raise LocalAwsError(
                f"the local AWS on port {port} (pid {running['pid']}) is running but does not answer. "
                f"Stop it (kill {running['pid']}) and run again; its log is {state_dir / LOG_NAME}.")
        return _endpoint(port)

    answer = _probe(port)
    if answer is not None:
        health = answer if isinstance(answer, dict) else None
        if health and health.get("status") == "ok" and health.get("state_dir") == str(state_dir) and alive(health.get("pid")):
            # Our server, whose record was lost: adopt it by recording it again.
            _write_record(state_dir, {"pid": health["pid"], "port": port, "host": HOST, "endpoint": _endpoint(port),
                                      "started_at": None, "log": str(state_dir / LOG_NAME)})
            return _endpoint(port)
        owner = f"another local AWS (state dir {health.get('state_dir')}, pid {health.get('pid')})" if health else "another program"
        raise LocalAwsError(
            f"port {port} on {HOST} is already in use by {owner}. Stop that program, "
            f"or set local.port in config.yaml to a free port (e.g. {_free_port_hint(port)}).")

    return _start(port, state_dir, concurrency, timeout, server_module)


def status(state_dir: Path) -> dict[str, Any] | None:
    """The record of the running local AWS for state_dir plus `healthy` and `endpoint`, or None.

    A record whose process has gone is removed. A live process that does not answer its health check
    (busy starting, or hung) is reported with healthy=False.
    """
    state_dir = Path(state_dir).resolve()
    record = _read_record(state_dir)
    if record is None:
        return None
    pid, port = record.get("pid"), record.get("port")
    if isinstance(pid, int) and _dying(pid):
        _wait_gone(pid, 10)  # killed (kill -9): gone in a moment, its port with it
    if not isinstance(pid, int) or not isinstance(port, int) or not alive(pid):
        _remove_record(state_dir)
        return None
    health = _probe(port)
    healthy = isinstance(health, dict) and health.get("pid") == pid
    if not healthy and not _is_our_server(pid, state_dir):
        _remove_record(state_dir)  # the pid now belongs to some other process
        return None
    return {**record, "endpoint": _endpoint(port), "healthy": healthy}


def stop(state_dir: Path, timeout: float = 10) -> bool:
    """Stop the local AWS for state_dir: SIGTERM, wait, SIGKILL its process group as a last resort.

    True if a server was running and has been stopped; False if there was none (stale records removed).
    """
    state_dir = Path(state_dir).resolve()
    running = status(state_dir)
    if running is None:
        return False
    pid = running["pid"]
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        # Its process group holds the runtime's workers too (the server is a session leader).
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 5)
    _remove_record(state_dir)
    return True


def unreported_recovery_problems(state_dir: Path) -> list[str]:
    """What the server's last start had to drop or could not replay, once: marked reported when read."""
    path = Path(state_dir).resolve() / RECOVERY_NAME
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(report, dict) or report.get("reported", True):
        return []
    report["reported"] = True
    tmp = path.with_name(f".{RECOVERY_NAME}.{os.getpid()}.tmp")
    with open(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)
    return [str(p) for key in ("unreadable_snapshots", "dropped", "diverged") for p in report.get(key) or []]


# ---------------------------------------------------------------------------- starting

def _start(port: int, state_dir: Path, concurrency: int, timeout: float, server_module: str) -> str:
    log_path = state_dir / LOG_NAME
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", server_module, "--port", str(port), "--state-dir", str(state_dir),
               "--host", HOST, "--lambda-concurrency", str(concurrency)]
    # 0600 as every file of the state dir (state/private.py): it is made here, before the server's umask.
    with open(open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab") as log_file:
        # A session of its own: it outlives the caller and its terminal, and Ctrl-C there does not reach it.
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    _children[process.pid] = process  # reaped by stop(); never waited for here
    if _wait_healthy(port, process.pid, timeout):
        return _endpoint(port)
    code = process.poll()
    if code is not None:
        _children.pop(process.pid, None)
        raise LocalAwsError(
            f"the local AWS exited at start-up (code {code}) on port {port}.\n{_tail(log_path)}\n"
            f"  Full log: {log_path}")
    _signal(process.pid, signal.SIGKILL)
    raise LocalAwsError(f"the local AWS did not answer on port {port} within {timeout:g} s; see {log_path}")


def _wait_healthy(port: int, pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        health = _probe(port)
        if isinstance(health, dict) and health.get("pid") == pid:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _start_lock(state_dir: Path) -> Iterator[None]:
    with open(open_private(state_dir / ".start.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_children: dict[int, subprocess.Popen] = {}


def endpoint_of(port: int) -> str:
    """The endpoint URL the local AWS on this port answers at."""
    return _endpoint(port)


def _endpoint(port: int) -> str:
    return f"http://{HOST}:{port}"


def _probe(port: int, timeout: float = 2.0) -> dict | bool | None:
    """None: nothing listens on the port. A dict: a local AWS health answer. True: something else listens."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        conn.request("GET", HEALTH_PATH)
        response = conn.getresponse()
        body = response.read()
    except ConnectionRefusedError:
        return None
    except (OSError, http.client.HTTPException):
        return True
    finally:
        conn.close()
    try:
        answer = json.loads(body) if response.status == 200 else None
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) and answer.get("status") == "ok" else True


def _free_port_hint(port: int) -> int:
    for candidate in range(port + 1, min(port + 50, 65535)):
        with socket.socket() as sock:
            try:
                sock.bind((HOST, candidate))
            except OSError:
                continue
            return candidate
    return port + 1


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join(f"  | {line}" for line in text)


# ---------------------------------------------------------------------------- records and processes

def _read_record(state_dir: Path) -> dict | None:
    try:
        record = json.loads((state_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        _remove_record(state_dir)  # unreadable: as good as stale
        return None
    return record if isinstance(record, dict) else None


def _write_record(state_dir: Path, record: dict) -> None:
    path = state_dir / RECORD_NAME
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _remove_record(state_dir: Path) -> None:
    try:
        (state_dir / RECORD_NAME).unlink()
    except FileNotFoundError:
        pass


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # exited but not yet reaped by a parent that is not us
        if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z":
            return True
    except (OSError, IndexError):
        return True
    return _dying(pid)


def _dying(pid: int) -> bool:
    """A killed process whose main thread is a zombie while its other threads still exit: until the
    last one has, its files (the listening socket) stay open and a connection to its port hangs."""
    try:
        zombie = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
        return zombie and len(os.listdir(f"/proc/{pid}/task")) > 1
    except (OSError, IndexError):
        return False


def _is_our_server(pid: int, state_dir: Path) -> bool:
    """Whether pid runs a local AWS for state_dir (its command line names it); True where /proc is absent."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists() and alive(pid)
    except OSError:
        return False
    return os.fsencode(str(state_dir)) in argv and b"--state-dir" in argv


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
