"""Runs deployed Lambda functions for the embedded local AWS.

moto stores functions but never runs them without Docker. This module does, the way AWS
Lambda does it, inside the local AWS server process:

    invoke_api_app   the Lambda Invoke API over HTTP (status codes, headers, errors as AWS)
    LambdaRuntime    picks the worker for an invocation: warm pools, the concurrency limit,
                     timeouts, crashes, cold starts
    _WorkerProcess   one `python -m crudstack.local.worker` process (an execution
                     environment) and the pipes to it; the protocol is described there
    _Telemetry       CloudWatch Logs (/aws/lambda/<name>) and AWS/Lambda metrics, written
                     straight into moto's in-process backends by a background thread

What runs is exactly the zip that was uploaded: the runtime reads the function's code and
configuration from moto's Lambda backend at every invocation, and a change to either
(code sha, handler, runtime, timeout, memory, environment) retires the warm workers built
from the old one, as a code or configuration update does on AWS.

Exceptions raised to callers (everything else becomes an InvokeResult, as on AWS):

    FunctionNotFound       (LookupError)   the Invoke API's 404 ResourceNotFoundException
    InvalidRequestContent  (ValueError)    400 InvalidRequestContentException (not JSON)
    RequestTooLarge        (ValueError)    413 RequestTooLargeException
    RuntimeClosed          (RuntimeError)  invoke after shutdown()
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import datetime
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import lambda_backends
from crudstack.local.telemetry import MotoTelemetry
from crudstack.local.worker import FrameReader, encode_frame, write_all

DEFAULT_ACCOUNT_ID = "123456789012"

# AWS's limits for a synchronous invocation's request and response.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_SYNC_RESPONSE = 6 * 1024 * 1024 + 100
# The init phase may take 10 s on AWS (or the function's timeout, when that is longer).
INIT_TIMEOUT_SECONDS = 10.0
# What a spare worker imports while it waits for a function: the tutorial's handlers all
# create a DynamoDB resource at import time.
DEFAULT_PRELOAD = ("boto3", "boto3.dynamodb.table", "boto3.dynamodb.conditions", "encodings.idna")

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_FUNCTION_ARN = re.compile(r"^arn:[^:]+:lambda:(?P<region>[^:]+):(?P<account>\d{12}):function:")
_SIGNAL_NAMES = {  # as AWS's (Go) runtime interface prints them
    signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated", signal.SIGBUS: "bus error", signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction", signal.SIGINT: "interrupt",
}


class FunctionNotFound(LookupError):
    def __init__(self, arn: str):
        self.arn = arn
        super().__init__(f"Function not found: {arn}")


class InvalidRequestContent(ValueError):
    pass


class RequestTooLarge(ValueError):
    pass


class RuntimeClosed(RuntimeError):
    pass


@dataclass
class InvokeResult:
    payload: bytes
    function_error: str | None
    timed_out: bool
    throttled: bool
    duration_ms: float
    request_id: str
    # Added beyond the agreed interface (defaults keep old call sites working):
    log: str = ""                      # this invocation's log, START..REPORT, for LogType=Tail
    executed_version: str = "$LATEST"  # X-Amz-Executed-Version
    init_duration_ms: float | None = None  # set on a cold start
    throttle_reason: str | None = None     # TooManyRequestsException's Reason


# ---------------------------------------------------------------------------
# What a function is, read from moto at invocation time.


@dataclass(frozen=True)
class _FunctionSpec:
    account_id: str
    region: str
    function_arn: str       # unqualified: concurrency is counted per function
    name: str
    version: str            # "$LATEST" or a published version number
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: tuple[tuple[str, str], ...]
    code_sha: str
    package_type: str
    reserved_concurrency: int | None = field(compare=False)

    @classmethod
    def from_moto(cls, fn, account_id: str, region: str) -> "_FunctionSpec":
        version = str(fn.version)
        arn = fn.function_arn if version == "$LATEST" else fn.function_arn.rsplit(":", 1)[0]
        reserved = fn.reserved_concurrency
        return cls(
            account_id=account_id, region=region, function_arn=arn, name=fn.function_name, version=version,
            handler=fn.handler or "", runtime=fn.run_time or "", timeout=int(fn.timeout or 3),
            memory_size=int(fn.memory_size or 128),
            environment=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
            code_sha=fn.code_sha_256 or "", package_type=fn.package_type or "Zip",
            reserved_concurrency=None if reserved in (None, "") else int(reserved),
        )

    @property
    def key(self) -> tuple:
        """Workers are interchangeable only within one key: any change starts new ones."""
        return (self.function_arn, self.version, self.code_sha, self.handler, self.runtime,
                self.timeout, self.memory_size, self.environment)

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


# ---------------------------------------------------------------------------
# One worker process.


class _WorkerExited(Exception):
    """The worker process ended (crashed, exited, was killed) in the middle of a call."""


class _InitFailed(Exception):
    """A cold start that produced no usable worker: reason None means it timed out."""

    def __init__(self, worker: "_WorkerProcess | None", reason: str | None):
        super().__init__(reason or "init timed out")
        self.worker, self.reason = worker, reason


class _WorkerProcess:
    def __init__(self, *, env: dict[str, str], preload: tuple[str, ...], all_packages: bool, on_output):
        self.task_root = tempfile.mkdtemp(prefix="crudstack-lambda-")
        command = [sys.executable, "-m", "crudstack.local.worker", "--task-root", self.task_root]
        if preload:
            command += ["--preload", ",".join(preload)]
        if all_packages:
            command.append("--all-packages")
        try:
            # A session of its own: Ctrl-C in the server's terminal is the server's to
            # handle, and killpg can take the handler's own subprocesses down too.
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, bufsize=0, cwd=_PROJECT_ROOT, env=env,
                                            start_new_session=True)
        except OSError:
            shutil.rmtree(self.task_root, ignore_errors=True)
            raise
        self.pid = self.process.pid
        self._in_fd = self.process.stdin.fileno()
        self._reader = FrameReader(self.process.stdout.fileno())
        self.preloaded: frozenset[str] | None = None
        self.spec: _FunctionSpec | None = None
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
        except _WorkerExited:
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
            raise _WorkerExited() from exc

    def _reply(self, deadline: float, logs: list) -> tuple[dict, bytes]:
        """The next non-log frame; log frames met on the way go into `logs`."""
        while True:
            frame = self._reader.read(deadline)
            if frame is None:
                raise _WorkerExited()
            meta, body = frame
            if meta.get("op") == "log":
                logs.append((meta["ts"], body.decode("utf-8", "backslashreplace"), meta.get("whole", False)))
            else:
                return meta, body

    def wait_ready(self, deadline: float) -> None:
        if self.preloaded is None:
            meta, _ = self._reply(deadline, [])
            self.preloaded = frozenset(meta.get("preloaded", ()))

    def init(self, *, spec: _FunctionSpec, log_stream: str, env: dict[str, str], code: bytes,
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


# ---------------------------------------------------------------------------
# CloudWatch Logs and metrics.


# Metrics put as single values rather than statistic sets, so that percentiles can be taken.
_PERCENTILE_METRICS = frozenset({"Duration"})


def _metric_timestamp() -> datetime.datetime:
    # moto compares metric timestamps with naive UTC datetimes (second resolution); an
    # aware datetime here would break get_metric_statistics for the whole namespace.
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


class _Telemetry:
    """Queues log events and metric values; `flush` hands them to the telemetry store
    (crudstack.local.telemetry). Producers only append to a deque, so an invocation never
    waits for CloudWatch."""

    def __init__(self, log: logging.Logger, store=None):
        self._log = log
        self._store = store or MotoTelemetry()
        self._queue: collections.deque = collections.deque()
        self._flush_lock = threading.Lock()

    def add_logs(self, spec: _FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        if events:
            self._queue.append(("log", spec.account_id, spec.region, spec.log_group, stream, events))

    def add_metric(self, spec: _FunctionSpec, name: str, value: float, unit: str) -> None:
        self._queue.append(("metric", spec.account_id, spec.region, spec.name, name, value, unit,
                            _metric_timestamp()))

    def flush(self) -> None:
        with self._flush_lock:
            logs: dict[tuple, list] = collections.defaultdict(list)
            metrics: dict[tuple, list] = collections.defaultdict(list)
            while self._queue:
                item = self._queue.popleft()
                if item[0] == "log":
                    logs[item[1:5]].extend(item[5])
                else:
                    _, account, region, function, name, value, unit, stamp = item
                    metrics[(account, region, function, name, unit, stamp)].append(value)
            for (account, region, group, stream), events in logs.items():
                try:
                    self._store.put_log_events(account, region, group, stream, events)
                except Exception:
                    self._log.exception("could not write %d log events to %s %s", len(events), group, stream)
            per_backend: dict[tuple, list] = collections.defaultdict(list)
            for (account, region, function, name, unit, stamp), values in metrics.items():
                datum = {"MetricName": name, "Unit": unit, "Timestamp": stamp,
                         "Dimensions": [{"Name": "FunctionName", "Value": function}]}
                if name in _PERCENTILE_METRICS:
                    # Each value, so alarms can take percentiles (Duration p99), as Lambda publishes it.
                    counted = collections.Counter(round(v, 3) for v in values)
                    datum.update(Values=list(counted), Counts=list(counted.values()))
                else:
                    datum["StatisticValues"] = {"Sum": sum(values), "Minimum": min(values), "Maximum": max(values),
                                                "SampleCount": len(values)}
                per_backend[(account, region)].append(datum)
            for (account, region), data in per_backend.items():
                try:
                    self._store.put_metric_data(account, region, "AWS/Lambda", data)
                except Exception:
                    self._log.exception("could not put %d AWS/Lambda metrics", len(data))


# ---------------------------------------------------------------------------
# The runtime.


def _iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_events(logs: list[tuple[int, str, bool]]) -> list[tuple[int, str]]:
    """Worker log frames -> CloudWatch events: one per printed line, one per log record."""
    events = []
    for ts, text, whole in logs:
        if whole:
            events.append((ts, text if text.endswith("\n") else text + "\n"))
            continue
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        events.extend((ts, line + "\n") for line in lines)
    return events


def _new_log_stream(spec: _FunctionSpec) -> str:
    """One stream per execution environment, named as AWS names them."""
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"


def _top_level_names(code: bytes) -> frozenset[str]:
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


class LambdaRuntime:
    """Runs Lambda invocations in worker processes, one pool of warm workers per
    function version and configuration. Thread-safe: call `invoke` from any thread.

    endpoint_url          what the handlers' boto3 calls reach (AWS_ENDPOINT_URL)
    max_concurrency       invocations of one function running at once; more are throttled
                          (a function's reserved concurrency lowers it further)
    spare_workers         workers kept booted with boto3 imported, for fast cold starts
    idle_timeout          seconds a warm worker may sit unused before it is stopped
    lambda_packages_only  hide installed packages AWS's Python runtime does not have
    telemetry             where logs and metrics go (crudstack.local.telemetry; default: moto, directly)
    """

    def __init__(self, *, endpoint_url: str, max_concurrency: int = 10, log: logging.Logger | None = None,
                 spare_workers: int = 1, idle_timeout: float = 600.0, preload: tuple[str, ...] = DEFAULT_PRELOAD,
                 flush_interval: float = 0.2, lambda_packages_only: bool = True, telemetry=None):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if spare_workers < 0:
            raise ValueError(f"spare_workers must be 0 or more, got {spare_workers}")
        self.endpoint_url = endpoint_url
        self.max_concurrency = max_concurrency
        self.log = log or logging.getLogger("crudstack.local.runtime")
        self._spare_target = spare_workers
        self._idle_timeout = idle_timeout
        self._preload = tuple(preload)
        self._flush_interval = flush_interval
        self._lambda_packages_only = lambda_packages_only
        self._base_env = self._worker_base_environment()

        self._lock = threading.Lock()
        self._closed = False
        self._workers: set[_WorkerProcess] = set()      # every live process, spares included
        self._spares: list[_WorkerProcess] = []
        self._idle: dict[tuple, list[_WorkerProcess]] = {}
        self._current_key: dict[tuple[str, str], tuple] = {}  # (function arn, version) -> key
        self._in_flight: dict[str, int] = {}
        self._stopping: list[_WorkerProcess] = []
        self._zip_names: dict[str, frozenset[str]] = {}

        self._telemetry = _Telemetry(self.log, telemetry)
        # Event invocations wait for capacity in these threads (threads start on demand): more
        # of them than one function may run, so one busy function does not hold up the others.
        self._events = concurrent.futures.ThreadPoolExecutor(max_workers=max(32, 4 * max_concurrency),
                                                              thread_name_prefix="lambda-event")
        self._wake = threading.Event()
        self._stop_housekeeping = threading.Event()
        for _ in range(self._spare_target):
            self._add_spare()
        self._housekeeper = threading.Thread(target=self._housekeeping, name="lambda-runtime-housekeeper",
                                             daemon=True)
        self._housekeeper.start()

    # -- public API -----------------------------------------------------------

    def invoke(self, function_arn_or_name: str, payload: bytes, *, region: str, account_id: str = DEFAULT_ACCOUNT_ID,
               source: str = "api", qualifier: str | None = None,
               client_context: dict | None = None) -> InvokeResult:
        """Run one synchronous (RequestResponse) invocation. Raises FunctionNotFound,
        InvalidRequestContent, RequestTooLarge or RuntimeClosed; everything that goes wrong
        inside the function (errors, crashes, timeouts, throttling) is in the result."""
        fn, spec, payload = self._prepare(function_arn_or_name, payload, region, account_id, qualifier)
        return self._invoke(fn, spec, payload, str(uuid.uuid4()), source, qualifier, client_context)

    def invoke_async(self, function_arn_or_name: str, payload: bytes, *, region: str,
                     account_id: str = DEFAULT_ACCOUNT_ID, qualifier: str | None = None,
                     source: str = "event") -> str:
        """InvocationType=Event: check the request now, run it in the background and
        return its request id. A throttled event is retried, as AWS keeps it queued."""
        fn, spec, payload = self._prepare(function_arn_or_name, payload, region, account_id, qualifier)
        request_id = str(uuid.uuid4())
        try:
            self._events.submit(self._run_event, fn, spec, payload, request_id, source, qualifier)
        except RuntimeError as exc:  # the executor is shut down
            raise RuntimeClosed("the Lambda runtime is shut down") from exc
        return request_id

    def check_function(self, function_arn_or_name: str, *, region: str, account_id: str = DEFAULT_ACCOUNT_ID,
                       qualifier: str | None = None) -> str:
        """InvocationType=DryRun: raise FunctionNotFound unless the function exists;
        returns its version."""
        return str(self._find_function(function_arn_or_name, region, account_id, qualifier).version)

    def flush(self) -> None:
        """Write queued logs and metrics to moto now (the background thread does it every
        `flush_interval` seconds)."""
        self._telemetry.flush()

    def worker_pids(self) -> list[int]:
        """Process ids of every worker, spares included (for tests and diagnostics)."""
        with self._lock:
            return sorted(worker.pid for worker in self._workers)

    def shutdown(self) -> None:
        """Stop every worker process and write what is left of the logs and metrics."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers) + list(self._stopping)
            self._workers.clear()
            self._spares.clear()
            self._idle.clear()
            self._stopping.clear()
        self._events.shutdown(wait=False, cancel_futures=True)
        self._stop_housekeeping.set()
        self._wake.set()
        # SIGKILL rather than end-of-file: a busy handler must not delay shutdown, and the
        # task directories are removed here either way.
        for worker in workers:
            worker.kill()
        self._housekeeper.join(timeout=5)
        self._telemetry.flush()

    def __enter__(self) -> "LambdaRuntime":
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()

    # -- finding the function ---------------------------------------------------

    def _find_function(self, name_or_arn: str, region: str, account_id: str, qualifier: str | None):
        arn_match = _FUNCTION_ARN.match(name_or_arn)
        if arn_match:  # an ARN names its own region and account
            region, account_id = arn_match["region"], arn_match["account"]
        try:
            return lambda_backends[account_id][region].get_function(name_or_arn, qualifier)
        except (LambdaClientError, KeyError, ValueError):
            pass
        if name_or_arn.startswith("arn:"):
            arn = name_or_arn
        else:
            partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
            arn = f"arn:{partition}:lambda:{region}:{account_id}:function:{name_or_arn}"
        if qualifier and not arn.endswith(f":{qualifier}"):
            arn = f"{arn}:{qualifier}"
        raise FunctionNotFound(arn)

    def _prepare(self, name_or_arn, payload, region, account_id, qualifier):
        if self._closed:
            raise RuntimeClosed("the Lambda runtime is shut down")
        fn = self._find_function(name_or_arn, region, account_id, qualifier)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if len(payload) > MAX_SYNC_PAYLOAD:
            raise RequestTooLarge(f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the Invoke operation")
        if payload.strip():
            try:
                json.loads(payload)
            except ValueError as exc:
                raise InvalidRequestContent(f"Could not parse request body into json: {exc}") from exc
        return fn, _FunctionSpec.from_moto(fn, getattr(fn, "account_id", account_id), getattr(fn, "region", region)), payload

    # -- one invocation -------------------------------------------------------------

    def _run_event(self, fn, spec, payload, request_id, source, qualifier) -> None:
        try:
            self._retry_event(fn, spec, payload, request_id, source, qualifier)
        except Exception:
            self.log.exception("event %s for %s failed in the runtime", request_id, spec.name)

    def _retry_event(self, fn, spec, payload, request_id, source, qualifier) -> None:
        # AWS keeps a throttled event queued for up to 6 hours; a local run retries for a
        # minute (or two timeouts) and then says that it dropped it.
        delay = 0.05
        patience = max(60.0, 2.0 * spec.timeout)
        give_up = time.monotonic() + patience
        while not self._closed:
            try:
                result = self._invoke(fn, spec, payload, request_id, source, qualifier, None)
            except RuntimeClosed:
                return
            if not result.throttled:
                if result.function_error:
                    self.log.warning("event %s for %s failed: %s", request_id, spec.name, result.payload[:500])
                return
            if time.monotonic() > give_up:
                self.log.warning("dropped event %s for %s: throttled for over %.0f s", request_id, spec.name,
                                 patience)
                return
            self._stop_housekeeping.wait(delay)
            delay = min(delay * 2, 1.0)

    def _invoke(self, fn, spec: _FunctionSpec, payload: bytes, request_id: str, source: str,
                qualifier: str | None, client_context: dict | None) -> InvokeResult:
        limit = self.max_concurrency
        if spec.reserved_concurrency is not None:
            limit = min(limit, spec.reserved_concurrency)
        with self._lock:
            if self._closed:
                raise RuntimeClosed("the Lambda runtime is shut down")
            running = self._in_flight.get(spec.function_arn, 0)
            admitted = running < limit
            if admitted:
                self._in_flight[spec.function_arn] = running + 1
                worker, stale = self._take_idle_worker(spec)
        if not admitted:
            self._telemetry.add_metric(spec, "Throttles", 1, "Count")
            reason = ("ReservedFunctionConcurrentInvocationLimitExceeded" if spec.reserved_concurrency is not None
                      and spec.reserved_concurrency <= self.max_concurrency else "ConcurrentInvocationLimitExceeded")
            self.log.info("throttled %s (%s): %d of %d running", spec.name, source, running, limit)
            return InvokeResult(payload=json.dumps({"Reason": reason, "Type": "User", "message": "Rate Exceeded."}).encode(),
                                function_error=None, timed_out=False, throttled=True, duration_ms=0.0,
                                request_id=request_id, executed_version=spec.version, throttle_reason=reason)
        for old in stale:
            self._retire(old)
        try:
            return self._run(fn, spec, worker, payload, request_id, qualifier, client_context)
        finally:
            with self._lock:
                self._in_flight[spec.function_arn] -= 1

    def _take_idle_worker(self, spec: _FunctionSpec) -> tuple[_WorkerProcess | None, list[_WorkerProcess]]:
        """Under self._lock: the most recently used warm worker for this exact code and
        configuration (LIFO keeps the pool small), plus idle workers made stale by an update."""
        key = spec.key
        slot = (spec.function_arn, spec.version)
        stale: list[_WorkerProcess] = []
        current = self._current_key.get(slot)
        if current != key:
            self._current_key[slot] = key
            if current is not None:
                stale = self._idle.pop(current, [])
        pool = self._idle.get(key)
        return (pool.pop() if pool else None), stale

    def _run(self, fn, spec: _FunctionSpec, worker: _WorkerProcess | None, payload: bytes, request_id: str,
             qualifier: str | None, client_context: dict | None) -> InvokeResult:
        events: list[tuple[int, str]] = []
        init_ms = None
        if spec.package_type != "Zip" or not spec.runtime.startswith("python"):
            return self._cannot_run(spec, request_id)
        if worker is None:
            started = time.monotonic()
            logs: list = []
            try:
                worker, init_error = self._cold_start(fn, spec, logs)
            except _InitFailed as failure:
                return self._init_failure(spec, failure, request_id, logs, (time.monotonic() - started) * 1000)
            events.extend(_log_events(logs))
            if init_error is not None:
                return self._finish_failed_init(worker, spec, request_id, init_error, events)
            init_ms = worker.init_ms

        invoked_arn = spec.function_arn if not qualifier else f"{spec.function_arn}:{qualifier}"
        start_ms = _now_ms()
        events.append((start_ms, f"START RequestId: {request_id} Version: {spec.version}\n"))
        logs = []
        started = time.monotonic()
        deadline = started + spec.timeout
        try:
            meta, body = worker.invoke(request_id=request_id, payload=payload, invoked_arn=invoked_arn,
                                       deadline=deadline, deadline_ms=start_ms + spec.timeout * 1000,
                                       client_context=client_context, logs=logs)
        except TimeoutError:
            self._discard(worker, kill=True)
            events.extend(_log_events(logs))
            message = f"{_iso_now()} {request_id} Task timed out after {spec.timeout:.2f} seconds"
            events.append((_now_ms(), message + "\n"))
            duration = (time.monotonic() - started) * 1000
            self.log.warning("%s timed out after %d s (request %s); its worker %d was killed",
                             spec.name, spec.timeout, request_id, worker.pid)
            return self._finish(spec, worker, request_id, events, json.dumps({"errorMessage": message}).encode(),
                                "Unhandled", duration, init_ms, timed_out=True, status="timeout")
        except Exception as exc:  # _WorkerExited, or a pipe out of step (the handler wrote into it)
            if not isinstance(exc, _WorkerExited):
                self.log.error("%s: lost track of worker %d: %r", spec.name, worker.pid, exc)
                worker.kill()
            reason = worker.exit_reason()
            if self._closed:  # shutdown() ended the worker, not the handler
                reason = "Runtime exited: the local Lambda runtime was shut down"
            self._discard(worker, kill=True)
            events.extend(_log_events(logs))
            events.append((_now_ms(), f"RequestId: {request_id} Error: {reason}\nRuntime.ExitError\n"))
            duration = (time.monotonic() - started) * 1000
            self.log.warning("%s: worker %d died during request %s: %s", spec.name, worker.pid, request_id, reason)
            error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: {reason}"}
            return self._finish(spec, worker, request_id, events, json.dumps(error).encode(), "Unhandled",
                                duration, init_ms, status="error", error_type="Runtime.ExitError")
        events.extend(_log_events(logs))
        self._release(worker)
        function_error = None if meta.get("ok") else "Unhandled"
        if function_error is None and len(body) > MAX_SYNC_RESPONSE:
            function_error = "Unhandled"
            body = json.dumps({"errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                               f"({MAX_SYNC_RESPONSE} bytes).",
                               "errorType": "Function.ResponseSizeTooLarge"}).encode()
        return self._finish(spec, worker, request_id, events, body, function_error, meta.get("ms", 0.0), init_ms)

    def _finish(self, spec: _FunctionSpec, worker: _WorkerProcess | None, request_id: str, events: list,
                payload: bytes, function_error: str | None, duration_ms: float, init_ms: float | None, *,
                timed_out: bool = False, status: str | None = None, error_type: str | None = None) -> InvokeResult:
        now = _now_ms()
        rss_kb = worker.rss_kb if worker else 0
        stream = worker.log_stream if worker and worker.log_stream else _new_log_stream(spec)
        events.append((now, f"END RequestId: {request_id}\n"))
        events.append((now, self._report_line(spec, request_id, duration_ms, init_ms, rss_kb, status, error_type)))
        self._telemetry.add_logs(spec, stream, events)
        self._telemetry.add_metric(spec, "Invocations", 1, "Count")
        self._telemetry.add_metric(spec, "Errors", 1 if function_error else 0, "Count")
        self._telemetry.add_metric(spec, "Duration", duration_ms, "Milliseconds")
        return InvokeResult(payload=payload, function_error=function_error, timed_out=timed_out, throttled=False,
                            duration_ms=duration_ms, request_id=request_id, log="".join(m for _, m in events),
                            executed_version=spec.version, init_duration_ms=init_ms)

    @staticmethod
    def _report_line(spec, request_id, duration_ms, init_ms, rss_kb, status=None, error_type=None) -> str:
        billed = math.ceil(duration_ms + (init_ms or 0.0))  # AWS bills the init phase too
        parts = [f"REPORT RequestId: {request_id}", f"Duration: {duration_ms:.2f} ms", f"Billed Duration: {billed} ms",
                 f"Memory Size: {spec.memory_size} MB", f"Max Memory Used: {math.ceil(rss_kb / 1024)} MB"]
        if init_ms is not None:
            parts.append(f"Init Duration: {init_ms:.2f} ms")
        if status:
            parts.append(f"Status: {status}")
        if error_type:
            parts.append(f"Error Type: {error_type}")
        return "\t".join(parts) + "\n"

    def _cannot_run(self, spec: _FunctionSpec, request_id: str) -> InvokeResult:
        error = {"errorType": "Runtime.InvalidRuntime",
                 "errorMessage": f"The local Lambda runtime runs Python zip functions only; {spec.name} is "
                                 f"{spec.package_type} {spec.runtime or '(no runtime)'}"}
        self._telemetry.add_metric(spec, "Invocations", 1, "Count")
        self._telemetry.add_metric(spec, "Errors", 1, "Count")
        return InvokeResult(payload=json.dumps(error).encode(), function_error="Unhandled", timed_out=False,
                            throttled=False, duration_ms=0.0, request_id=request_id, executed_version=spec.version)

    # -- cold starts ---------------------------------------------------------------

    def _function_environment(self, spec: _FunctionSpec, log_stream: str) -> dict[str, str]:
        env = dict(spec.environment)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "_HANDLER": spec.handler,
        })
        env.update(self._forced_environment())
        return env

    def _forced_environment(self) -> dict[str, str]:
        # Fake credentials and the local endpoint win over anything the function sets:
        # a function run locally must never reach (or sign for) real AWS.
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def _worker_base_environment(self) -> dict[str, str]:
        """What every worker starts with; the function's own variables are added by the
        init frame. Nothing else of the server's environment leaks in, as on AWS."""
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC"}
        if "LD_LIBRARY_PATH" in os.environ:
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        env.update(self._forced_environment())
        return env

    def _spawn(self, *, preload: tuple[str, ...], extra_env: dict[str, str] | None = None) -> _WorkerProcess:
        env = dict(self._base_env)
        if extra_env:
            env.update(extra_env)
        worker = _WorkerProcess(env=env, preload=preload, all_packages=not self._lambda_packages_only,
                                on_output=self._worker_output)
        with self._lock:
            closed = self._closed
            if not closed:
                self._workers.add(worker)
        if closed:
            worker.kill()
            raise RuntimeClosed("the Lambda runtime is shut down")
        return worker

    def _add_spare(self) -> None:
        worker = self._spawn(preload=self._preload)
        with self._lock:
            if not self._closed:
                self._spares.append(worker)

    def _claim_spare(self, spec: _FunctionSpec, code: bytes) -> _WorkerProcess | None:
        """A spare worker (interpreter up, boto3 imported) if this function can use it:
        not when the zip bundles its own copy of a preloaded module (its copy must win, as
        /var/task comes first on AWS), nor when PYTHON* variables must be seen at start-up."""
        if any(name.startswith("PYTHON") for name, _ in spec.environment):
            return None
        with self._lock:
            spare = self._spares.pop() if self._spares else None
        if spare is None:
            return None
        try:
            spare.wait_ready(time.monotonic() + 30.0)
        except (_WorkerExited, TimeoutError):
            self._discard(spare, kill=True)
            return None
        names = self._zip_names.get(spec.code_sha)
        if names is None:
            if len(self._zip_names) > 256:
                self._zip_names.clear()
            names = self._zip_names[spec.code_sha] = _top_level_names(code)
        if spare.preloaded & names:
            with self._lock:
                if not self._closed:
                    self._spares.append(spare)
                    return None
            self._discard(spare, kill=True)
            return None
        return spare

    def _cold_start(self, fn, spec: _FunctionSpec, logs: list) -> tuple[_WorkerProcess, dict | None]:
        code = fn.code_bytes or b""
        worker = self._claim_spare(spec, code)
        if worker is None:
            python_env = {name: value for name, value in spec.environment if name.startswith("PYTHON")}
            try:
                worker = self._spawn(preload=(), extra_env=python_env)
            except OSError as exc:
                raise _InitFailed(None, f"could not start a worker process: {exc}") from exc
        stream = _new_log_stream(spec)
        deadline = time.monotonic() + max(INIT_TIMEOUT_SECONDS, spec.timeout)
        try:
            worker.wait_ready(deadline)
            meta, body = worker.init(spec=spec, log_stream=stream, env=self._function_environment(spec, stream),
                                     code=code, deadline=deadline, logs=logs)
        except TimeoutError as exc:
            self._discard(worker, kill=True)
            raise _InitFailed(worker, None) from exc
        except _WorkerExited as exc:
            reason = worker.exit_reason()
            self._discard(worker, kill=True)
            raise _InitFailed(worker, reason) from exc
        # Only now the next spare: booting it (about a core for 0.3 s) while this init runs
        # would slow the cold start that is being waited for.
        self._wake.set()
        if meta.get("op") == "init_error":
            return worker, json.loads(body)
        self.log.info("cold start of %s: worker %d, init %.1f ms", spec.name, worker.pid, worker.init_ms)
        return worker, None

    def _finish_failed_init(self, worker: _WorkerProcess, spec: _FunctionSpec, request_id: str, error: dict,
                            events: list) -> InvokeResult:
        # AWS throws the environment away and tries the init again on the next request.
        self._discard(worker, kill=True)
        events.append((_now_ms(), f"START RequestId: {request_id} Version: {spec.version}\n"))
        self.log.warning("%s failed to initialise: %s: %s", spec.name, error.get("errorType"), error.get("errorMessage"))
        return self._finish(spec, worker, request_id, events, json.dumps(error).encode(), "Unhandled", 0.0,
                            worker.init_ms, status="error", error_type=error.get("errorType"))

    def _init_failure(self, spec: _FunctionSpec, failure: "_InitFailed", request_id: str, logs: list,
                      elapsed_ms: float) -> InvokeResult:
        """The init phase itself timed out or the process died in it (a crash at import)."""
        events = _log_events(logs)
        events.append((_now_ms(), f"START RequestId: {request_id} Version: {spec.version}\n"))
        if failure.reason is None:
            limit = max(INIT_TIMEOUT_SECONDS, spec.timeout)
            message = f"{_iso_now()} {request_id} Task timed out after {limit:.2f} seconds"
            events.append((_now_ms(), message + "\n"))
            self.log.warning("%s: init timed out after %.0f s", spec.name, limit)
            return self._finish(spec, failure.worker, request_id, events, json.dumps({"errorMessage": message}).encode(),
                                "Unhandled", elapsed_ms, None, timed_out=True, status="timeout")
        error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: {failure.reason}"}
        events.append((_now_ms(), f"RequestId: {request_id} Error: {failure.reason}\nRuntime.ExitError\n"))
        self.log.warning("%s: init failed: %s", spec.name, failure.reason)
        return self._finish(spec, failure.worker, request_id, events, json.dumps(error).encode(), "Unhandled",
                            elapsed_ms, None, status="error", error_type="Runtime.ExitError")

    # -- worker lifecycle ------------------------------------------------------------

    def _release(self, worker: _WorkerProcess) -> None:
        worker.last_used = time.monotonic()
        with self._lock:
            spec = worker.spec
            current = self._current_key.get((spec.function_arn, spec.version))
            if not self._closed and current == spec.key:
                self._idle.setdefault(spec.key, []).append(worker)
                return
        self._retire(worker)

    def _retire(self, worker: _WorkerProcess) -> None:
        """Stop a healthy worker that is no longer wanted (stale code, idle too long)."""
        with self._lock:
            self._workers.discard(worker)
            self._stopping.append(worker)
        worker.stop()
        self._wake.set()

    def _discard(self, worker: _WorkerProcess, *, kill: bool) -> None:
        with self._lock:
            self._workers.discard(worker)
        if kill:
            worker.kill()

    def _worker_output(self, worker: _WorkerProcess, lines: list[str]) -> None:
        if worker.spec is None or worker.log_stream is None:
            for line in lines:
                self.log.warning("lambda worker %d: %s", worker.pid, line)
            return
        now = _now_ms()
        self._telemetry.add_logs(worker.spec, worker.log_stream, [(now, line + "\n") for line in lines])

    def _housekeeping(self) -> None:
        while not self._stop_housekeeping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self._telemetry.flush()
                self._reap_stopped()
                self._retire_idle()
                self._top_up_spares()
            except Exception:
                self.log.exception("Lambda runtime housekeeping failed")

    def _reap_stopped(self) -> None:
        with self._lock:
            stopping = list(self._stopping)
        for worker in stopping:
            if not worker.reap():
                if time.monotonic() - worker.stopped_at < 5.0:
                    continue
                worker.kill()  # ignored end-of-file for 5 s
            with self._lock:
                if worker in self._stopping:
                    self._stopping.remove(worker)

    def _retire_idle(self) -> None:
        cutoff = time.monotonic() - self._idle_timeout
        expired = []
        with self._lock:
            for key, pool in list(self._idle.items()):
                keep = [worker for worker in pool if worker.last_used >= cutoff]
                expired.extend(worker for worker in pool if worker.last_used < cutoff)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for worker in expired:
            self._retire(worker)

    def _top_up_spares(self) -> None:
        while not self._closed:
            with self._lock:
                missing = len(self._spares) < self._spare_target
            if not missing:
                return
            try:
                self._add_spare()
            except RuntimeClosed:
                return


# ---------------------------------------------------------------------------
# The Invoke API.

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/[^/]+/(?P<region>[^/]+)/")
_STATUS_TEXT = {200: "200 OK", 202: "202 Accepted", 204: "204 No Content", 400: "400 Bad Request",
                404: "404 Not Found", 413: "413 Request Entity Too Large", 429: "429 Too Many Requests",
                503: "503 Service Unavailable"}
_LOG_TAIL_BYTES = 4096


def _account_id(environ: dict, access_key: str | None) -> str:
    # The same order moto uses for its own responses.
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    if access_key:
        from moto.iam.models import get_account_id_from

        return get_account_id_from(access_key)
    return DEFAULT_ACCOUNT_ID


def invoke_api_app(runtime: LambdaRuntime):
    """A WSGI app serving POST /2015-03-31/functions/{name}/invocations like AWS Lambda."""

    def respond(start_response, status: int, body: bytes, headers: dict[str, str]):
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
        start_response(_STATUS_TEXT[status], list(headers.items()))
        return [body]

    def error(start_response, status: int, code: str, body: dict, request_id: str):
        return respond(start_response, status, json.dumps(body).encode(),
                       {"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id})

    def app(environ, start_response):
        request_id = str(uuid.uuid4())
        match = _INVOKE_PATH.match(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return error(start_response, 404, "UnknownOperationException",
                         {"Type": "User", "message": "Unknown operation"}, request_id)
        name = unquote(match["name"])
        query = parse_qs(environ.get("QUERY_STRING", ""))
        qualifier = (query.get("Qualifier") or [None])[0]
        credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = credential["region"] if credential else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        account_id = _account_id(environ, credential["key"] if credential else None)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        payload = environ["wsgi.input"].read(length) if length > 0 else b""
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        client_context = None
        if environ.get("HTTP_X_AMZ_CLIENT_CONTEXT"):
            try:
                client_context = json.loads(base64.b64decode(environ["HTTP_X_AMZ_CLIENT_CONTEXT"]))
            except ValueError:
                return error(start_response, 400, "InvalidRequestContentException",
                             {"Type": "User", "message": "Client context must be a valid Base64-encoded JSON object."},
                             request_id)
        try:
            if invocation_type == "DryRun":
                version = runtime.check_function(name, region=region, account_id=account_id, qualifier=qualifier)
                return respond(start_response, 204, b"", {"x-amzn-RequestId": request_id,
                                                           "X-Amz-Executed-Version": version})
            if invocation_type == "Event":
                request_id = runtime.invoke_async(name, payload, region=region, account_id=account_id,
                                                  qualifier=qualifier)
                return respond(start_response, 202, b"", {"x-amzn-RequestId": request_id})
            if invocation_type != "RequestResponse":
                return error(start_response, 400, "InvalidParameterValueException",
                             {"Type": "User", "message": f"Unsupported invocation type {invocation_type}"}, request_id)
            result = runtime.invoke(name, payload, region=region, account_id=account_id, qualifier=qualifier,
                                    client_context=client_context)
        except FunctionNotFound as exc:
            return error(start_response, 404, "ResourceNotFoundException",
                         {"Type": "User", "Message": str(exc)}, request_id)
        except InvalidRequestContent as exc:
            return error(start_response, 400, "InvalidRequestContentException",
                         {"Type": "User", "message": str(exc)}, request_id)
        except RequestTooLarge as exc:
            return error(start_response, 413, "RequestTooLargeException",
                         {"Type": "User", "message": str(exc)}, request_id)
        except RuntimeClosed as exc:
            return error(start_response, 503, "ServiceException", {"Type": "Service", "message": str(exc)}, request_id)
        if result.throttled:
            return respond(start_response, 429, result.payload,
                           {"x-amzn-ErrorType": "TooManyRequestsException", "x-amzn-RequestId": result.request_id})
        headers = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": result.executed_version}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if environ.get("HTTP_X_AMZ_LOG_TYPE") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log.encode("utf-8")[-_LOG_TAIL_BYTES:]).decode()
        return respond(start_response, 200, result.payload, headers)

    return app
