"""One worker process, seen from the runtime: crudstack.local.awslambda.worker (an execution
environment) and the pipes to it (awslambda/protocol.py).

It starts in its own task root, a fresh 0700 directory, not in the repository: the interpreter finds
our worker module through a one-line bootstrap that puts the project's directory on sys.path (and the
worker takes it off again before the function runs). Started by root, each worker gets a user id of its
own (SandboxUsers) to run the function as (worker.py drop_privileges)."""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from crudstack.local.awslambda.exceptions import WorkerExited
from crudstack.local.awslambda.models import FunctionSpec
from crudstack.local.awslambda.protocol import FrameReader, encode_frame, write_all

WORKER_MODULE = "crudstack.local.awslambda.worker"
_PROJECT_ROOT = str(Path(__file__).resolve().parents[3])
# `python -c` puts the working directory (the task root) first on sys.path; this puts our project there instead.
_BOOTSTRAP = f"import sys; sys.path[0] = {_PROJECT_ROOT!r}; from {WORKER_MODULE} import main; main()"


class SandboxUsers:
    """User ids for workers started by root, one per live worker, so no function can read another's
    task root. From 65536 up: Debian's policy leaves that range to dynamically allocated ids and no
    account gets one by default (https://www.debian.org/doc/debian-policy/ch-opersys.html#uid-and-gid-classes);
    where a user namespace maps fewer ids, the worker falls back to nobody (worker.py)."""

    FIRST, COUNT = 65536 + 1000, 4096

    def __init__(self):
        self._free = list(range(self.FIRST + self.COUNT - 1, self.FIRST - 1, -1))
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            return self._free.pop() if self._free else None

    def give_back(self, uid: int | None) -> None:
        if uid is not None:
            with self._lock:
                self._free.append(uid)


SANDBOX_USERS = SandboxUsers()
log = logging.getLogger("crudstack.local.runtime")
_warned_root = threading.Event()
_SIGNAL_NAMES = {  # as AWS's (Go) runtime interface prints them
    signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated", signal.SIGBUS: "bus error", signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction", signal.SIGINT: "interrupt",
}


def _end_processes_of(uid: int) -> None:
    """SIGKILL every process still running as a sandbox user id before the id goes to another worker: a
    handler's child in a session of its own (setsid) escapes the worker's killpg, and would otherwise run as
    the next function's user, able to read and rewrite its task root. kill(2) with pid -1 signals every
    process the caller may signal but itself and init, i.e. (as that user, with no capabilities) that
    user's own (https://man7.org/linux/man-pages/man2/kill.2.html)."""
    try:
        subprocess.run(["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False,
                       env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.SubprocessError):
        log.warning("could not end the processes left running as sandbox user %d", uid, exc_info=True)


class WorkerProcess:
    def __init__(self, *, env: dict[str, str], preload: tuple[str, ...], all_packages: bool, on_output,
                 python: str = sys.executable):
        self.task_root = tempfile.mkdtemp(prefix="crudstack-lambda-")  # 0700
        self.sandbox_uid = SANDBOX_USERS.take() if os.geteuid() == 0 else None
        if self.sandbox_uid is not None:  # left by a server that was killed before it could reap its workers
            _end_processes_of(self.sandbox_uid)
        command = [python, "-c", _BOOTSTRAP, "--task-root", self.task_root]
        if preload:
            command += ["--preload", ",".join(preload)]
        if all_packages:
            command.append("--all-packages")
        if self.sandbox_uid is not None:
            command += ["--run-as", str(self.sandbox_uid)]
        try:
            # A session of its own: Ctrl-C in the server's terminal is the server's to
            # handle, and killpg can take the handler's own subprocesses down too.
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, bufsize=0, cwd=self.task_root,
                                            env={**env, "LAMBDA_TASK_ROOT": self.task_root}, start_new_session=True)
        except OSError:
            shutil.rmtree(self.task_root, ignore_errors=True)
            SANDBOX_USERS.give_back(self.sandbox_uid)
            raise
        self.pid = self.process.pid
        self._in_fd = self.process.stdin.fileno()
        self._reader = FrameReader(self.process.stdout.fileno())
        self.preloaded: frozenset[str] | None = None
        self.user: dict | None = None   # from its ready frame: the user it runs functions as, or why root
        self.spec: FunctionSpec | None = None
        self.log_stream: str | None = None
        self.init_ms: float | None = None
        self.rss_kb = 0
        self.last_used = self.stopped_at = time.monotonic()
        self._on_output = on_output
        self._output_sink: list | None = None  # the current call's log, while there is one
        self._reaped = False
        self._output_thread = threading.Thread(target=self._pump_output, name=f"lambda-worker-{self.pid}-output",
                                               daemon=True)
        self._output_thread.start()

    def _pump_output(self) -> None:
        """fd-level output (C code, subprocesses, a dying interpreter) arrives here."""
        fd = self.process.stderr.fileno()
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                self._deliver_output([line.decode("utf-8", "backslashreplace") for line in lines])
        if pending:
            self._deliver_output([pending.decode("utf-8", "backslashreplace")])
        self.process.stderr.close()

    def _deliver_output(self, lines: list[str]) -> None:
        sink = self._output_sink
        if sink is not None:  # during a call: part of that invocation's log
            now = int(time.time() * 1000)
            sink.extend((now, line, True) for line in lines)
        else:
            self._on_output(self, lines)

    def _call(self, meta: dict, body: bytes, deadline: float, logs: list) -> tuple[dict, bytes]:
        """Send one frame and wait for the answer, collecting everything logged meanwhile."""
        self._output_sink = logs
        try:
            self._send(meta, body)
            return self._reply(deadline, logs)
        except WorkerExited:
            # A dying interpreter's last words (a fatal error, a C library's message)
            # belong to this invocation's log: wait briefly for them.
            self._output_thread.join(0.5)
            raise
        finally:
            self._output_sink = None

    def _send(self, meta: dict, body: bytes = b"") -> None:
        try:
            write_all(self._in_fd, encode_frame(meta, body))
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise WorkerExited() from exc

    def _reply(self, deadline: float, logs: list) -> tuple[dict, bytes]:
        """The next non-log frame; log frames met on the way go into `logs`."""
        while True:
            frame = self._reader.read(deadline)
            if frame is None:
                raise WorkerExited()
            meta, body = frame
            if meta.get("op") == "log":
                logs.append((meta["ts"], body.decode("utf-8", "backslashreplace"), meta.get("whole", False)))
            else:
                return meta, body

    def wait_ready(self, deadline: float) -> None:
        if self.preloaded is None:
            meta, _ = self._reply(deadline, [])
            self.preloaded = frozenset(meta.get("preloaded", ()))
            self.user = meta.get("user")
            if self.user and not self.user.get("dropped") and not _warned_root.is_set():
                _warned_root.set()
                log.warning("Lambda workers run as root: %s (README, \"What the local AWS protects, and what "
                            "it cannot\")", self.user.get("why"))

    def init(self, *, spec: FunctionSpec, log_stream: str, env: dict[str, str], code: bytes,
             deadline: float, logs: list) -> tuple[dict, bytes]:
        self.spec, self.log_stream = spec, log_stream
        function = {"name": spec.name, "version": spec.version, "memory_size": spec.memory_size,
                    "log_group": spec.log_group, "log_stream": log_stream}
        meta, body = self._call({"op": "init", "handler": spec.handler, "env": env, "function": function}, code,
                                deadline, logs)
        self.rss_kb = meta.get("rss_kb", 0)
        self.init_ms = meta.get("ms", 0.0)
        return meta, body

    def invoke(self, *, request_id: str, payload: bytes, invoked_arn: str, deadline: float, deadline_ms: int,
               client_context: dict | None, logs: list) -> tuple[dict, bytes]:
        meta, body = self._call({"op": "invoke", "id": request_id, "deadline": deadline_ms, "arn": invoked_arn,
                                 "client_context": client_context}, payload, deadline, logs)
        self.rss_kb = meta.get("rss_kb", self.rss_kb)
        return meta, body

    def stop(self) -> None:
        """Ask the worker to leave (end-of-file on its stdin); `reap` collects it."""
        self.stopped_at = time.monotonic()
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def kill(self) -> None:
        """SIGKILL the worker and whatever it started (its process group), then reap it."""
        if self.process.returncode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.reap(block=True)

    def reap(self, *, block: bool = False) -> bool:
        """Collect an exited worker and remove its task directory (the worker removes it
        itself on a clean exit, not when it was killed). True once it is gone."""
        if self._reaped:
            return True
        if block:
            self.process.wait()
        elif self.process.poll() is None:
            return False
        self._reaped = True
        # stdout is left to close with this object: another thread may still be reading it.
        try:
            self.process.stdin.close()
        except OSError:
            pass
        shutil.rmtree(self.task_root, ignore_errors=True)
        if self.sandbox_uid is not None and (self.user or {}).get("uid") == self.sandbox_uid:
            _end_processes_of(self.sandbox_uid)
        SANDBOX_USERS.give_back(self.sandbox_uid)
        self.sandbox_uid = None
        return True

    def exit_reason(self) -> str:
        """How the process ended, in the words of AWS's Runtime.ExitError messages. Reads
        the status without reaping (WNOWAIT), so `kill` can still signal the process
        group safely: an unreaped pid cannot have been reused."""
        give_up = time.monotonic() + 2.0
        try:
            while (info := os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)) is None:
                if time.monotonic() > give_up:  # closed its pipe but did not exit: end it
                    os.killpg(self.pid, signal.SIGKILL)
                    info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
                    break
                time.sleep(0.005)
            killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
            status = info.si_status
        except ChildProcessError:  # already reaped (shutdown got there first)
            code = self.process.returncode or 0
            killed, status = code < 0, abs(code)
        if killed:
            return f"Runtime exited with error: signal: {_SIGNAL_NAMES.get(status, f'signal {status}')}"
        if status == 0:
            return "Runtime exited without providing a reason"
        return f"Runtime exited with error: exit status {status}"



def top_level_names(code: bytes) -> frozenset[str]:
    """Module names a zip provides at its root ("boto3/", "six.py", "_cffi.cpython-311.so")."""
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        return frozenset()
    tops = set()
    for name in names:
        first = name.split("/", 1)[0]
        tops.add(first if "/" in name else first.split(".", 1)[0])
    return frozenset(tops)
