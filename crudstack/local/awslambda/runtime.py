"""The Lambda runtime: runs deployed functions in worker processes, as AWS Lambda does.

moto stores functions but never runs them without Docker. `LambdaRuntime` does, inside the local
AWS server process: it picks the worker for an invocation (warm pools per function version and
configuration, timeouts, crashes, cold starts); __init__.py maps the rest of the package.

What runs is exactly the zip that was uploaded: the runtime reads the function's code and
configuration from moto's Lambda backend at every invocation, and a change to either (code sha,
handler, runtime, timeout, memory, environment) retires the warm workers built from the old one,
as a code or configuration update does on AWS. The server tells the runtime of every write to moto
(`lookups`, crudstack/local/cache.py): the workers of a function deleted or changed by it are stopped
at once, the idle ones now and the busy ones as soon as their invocation is over.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
import uuid

from crudstack.local.awslambda.concurrency import Admission, ConcurrencyGate, refusal
from crudstack.local.awslambda.environment import function_environment, worker_base_environment
from crudstack.local.awslambda.exceptions import (
    FunctionNotFound,
    InitFailed,
    InvalidRequestContent,
    RequestTooLarge,
    RuntimeClosed,
    WorkerExited,
)
from crudstack.local.awslambda.logs import LambdaTelemetry, iso_now, log_events, new_log_stream, now_ms, report_line
from crudstack.local.awslambda.models import (
    DEFAULT_ACCOUNT_ID,
    INIT_TIMEOUT_SECONDS,
    MAX_SYNC_PAYLOAD,
    MAX_SYNC_RESPONSE,
    FunctionSpec,
    InvokeResult,
    find_function,
)
from crudstack.local.awslambda.process import WorkerProcess, top_level_names
from crudstack.local.cache import UntilWrite
from crudstack.local.iam.sessions import RoleSessions

# What a spare worker imports while it waits for a function: the tutorial's handlers all
# create a DynamoDB resource at import time.
DEFAULT_PRELOAD = ("boto3", "boto3.dynamodb.table", "boto3.dynamodb.conditions", "encodings.idna")


class LambdaRuntime:
    """Runs Lambda invocations in worker processes, one pool of warm workers per
    function version and configuration. Thread-safe: call `invoke` from any thread.

    endpoint_url          what the handlers' boto3 calls reach (AWS_ENDPOINT_URL)
    max_concurrency       workers of one function busy at once (the warm pool's size); more invocations
                          wait for one (concurrency.py); a function's reserved concurrency throttles
    spare_workers         workers kept booted with boto3 imported, for fast cold starts
    idle_timeout          seconds a warm worker may sit unused before it is stopped
    lambda_packages_only  hide installed packages AWS's Python runtime does not have
    telemetry             where logs and metrics go (crudstack.local.cloudwatch.telemetry; default: moto, directly)
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
        self._base_env = worker_base_environment(endpoint_url)
        # Function lookups; the server enables the cache and tells it of every write (crudstack/local/cache.py),
        # which is also when the workers of a deleted or changed function are found and stopped.
        self.lookups = UntilWrite()
        # Each worker runs with its function's role session (journaled when the telemetry has a state).
        self.sessions = RoleSessions(state=getattr(telemetry, "state", None))
        self.lookups.subscribe(self._functions_may_have_changed)
        self._recheck = threading.Event()
        self._gate = ConcurrencyGate(max_concurrency)

        self._lock = threading.Lock()
        self._closed = False
        self._workers: set[WorkerProcess] = set()      # every live process, spares included
        self._spares: list[WorkerProcess] = []
        self._idle: dict[tuple, list[WorkerProcess]] = {}
        self._current_key: dict[tuple[str, str], tuple] = {}  # (function arn, version) -> key
        self._stopping: list[WorkerProcess] = []
        self._zip_names: dict[str, frozenset[str]] = {}

        self._telemetry = LambdaTelemetry(self.log, telemetry)
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
               source: str = "api", qualifier: str | None = None, client_context: dict | None = None,
               deadline: float | None = None) -> InvokeResult:
        """Run one synchronous (RequestResponse) invocation. Raises FunctionNotFound,
        InvalidRequestContent, RequestTooLarge or RuntimeClosed; everything that goes wrong
        inside the function (errors, crashes, timeouts, throttling) is in the result.

        With every worker of the pool busy it waits for one until `deadline` (a time.monotonic()
        value; default: the function's timeout from now), then gives up with a throttled result
        marked `waited_out` (concurrency.py)."""
        fn, spec, payload = self._prepare(function_arn_or_name, payload, region, account_id, qualifier)
        return self._invoke(fn, spec, payload, str(uuid.uuid4()), source, qualifier, client_context, deadline)

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
        return str(find_function(function_arn_or_name, region, account_id, qualifier).version)

    def flush(self) -> None:
        """Write queued logs and metrics to moto now (the background thread does it every
        `flush_interval` seconds)."""
        self._telemetry.flush()

    def worker_pids(self) -> list[int]:
        """Process ids of every worker, spares included (for tests and diagnostics)."""
        with self._lock:
            return sorted(worker.pid for worker in self._workers)

    def invocations(self, function_arn: str) -> tuple[int, int]:
        """(running, waiting for a worker) invocations of one function, by its unqualified ARN."""
        return self._gate.counts(function_arn)

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
        self._gate.close()
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

    def _prepare(self, name_or_arn, payload, region, account_id, qualifier):
        if self._closed:
            raise RuntimeClosed("the Lambda runtime is shut down")
        fn, spec = self.lookups.get(("function", name_or_arn, region, account_id, qualifier),
                                    lambda: self._function_and_spec(name_or_arn, region, account_id, qualifier))
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if len(payload) > MAX_SYNC_PAYLOAD:
            raise RequestTooLarge(f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the Invoke operation")
        if payload.strip():
            try:
                json.loads(payload)
            except ValueError as exc:
                raise InvalidRequestContent(f"Could not parse request body into json: {exc}") from exc
        return fn, spec, payload

    @staticmethod
    def _function_and_spec(name_or_arn, region, account_id, qualifier):
        fn = find_function(name_or_arn, region, account_id, qualifier)
        return fn, FunctionSpec.from_moto(fn, getattr(fn, "account_id", account_id), getattr(fn, "region", region))

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

    def _invoke(self, fn, spec: FunctionSpec, payload: bytes, request_id: str, source: str,
                qualifier: str | None, client_context: dict | None, deadline: float | None = None) -> InvokeResult:
        if deadline is None:
            deadline = time.monotonic() + spec.timeout
        admission = self._gate.acquire(spec.function_arn, reserved=spec.reserved_concurrency, deadline=deadline)
        if admission is not Admission.ADMITTED:
            return self._throttled(spec, request_id, source, admission)
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeClosed("the Lambda runtime is shut down")
                worker, stale = self._take_idle_worker(spec)
            for old in stale:
                self._retire(old)
            return self._run(fn, spec, worker, payload, request_id, qualifier, client_context)
        finally:
            self._gate.release(spec.function_arn)

    def _throttled(self, spec: FunctionSpec, request_id: str, source: str, admission: Admission) -> InvokeResult:
        self._telemetry.add_metric(spec, "Throttles", 1, "Count")
        running, waiting = self._gate.counts(spec.function_arn)
        self.log.log(logging.INFO if admission is Admission.THROTTLED else logging.WARNING,
                     "%s %s (%s): reserved concurrency %s, pool %d, %d running, %d waiting", admission.value,
                     spec.name, source, spec.reserved_concurrency, self.max_concurrency, running, waiting)
        return refusal(admission, request_id, spec.version)

    def _take_idle_worker(self, spec: FunctionSpec) -> tuple[WorkerProcess | None, list[WorkerProcess]]:
        """Under self._lock: the most recently used warm worker for this exact code and
        configuration (LIFO keeps the pool small), plus idle workers made stale by an update."""
        key = spec.key
        slot = (spec.function_arn, spec.version)
        stale: list[WorkerProcess] = []
        current = self._current_key.get(slot)
        if current != key:
            self._current_key[slot] = key
            if current is not None:
                stale = self._idle.pop(current, [])
        pool = self._idle.get(key)
        return (pool.pop() if pool else None), stale

    def _run(self, fn, spec: FunctionSpec, worker: WorkerProcess | None, payload: bytes, request_id: str,
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
            except InitFailed as failure:
                return self._init_failure(spec, failure, request_id, logs, (time.monotonic() - started) * 1000)
            events.extend(log_events(logs))
            if init_error is not None:
                return self._finish_failed_init(worker, spec, request_id, init_error, events)
            init_ms = worker.init_ms

        invoked_arn = spec.function_arn if not qualifier else f"{spec.function_arn}:{qualifier}"
        start_ms = now_ms()
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
            events.extend(log_events(logs))
            message = f"{iso_now()} {request_id} Task timed out after {spec.timeout:.2f} seconds"
            events.append((now_ms(), message + "\n"))
            duration = (time.monotonic() - started) * 1000
            self.log.warning("%s timed out after %d s (request %s); its worker %d was killed",
                             spec.name, spec.timeout, request_id, worker.pid)
            return self._finish(spec, worker, request_id, events, json.dumps({"errorMessage": message}).encode(),
                                "Unhandled", duration, init_ms, timed_out=True, status="timeout")
        except Exception as exc:  # WorkerExited, or a pipe out of step (the handler wrote into it)
            if not isinstance(exc, WorkerExited):
                self.log.error("%s: lost track of worker %d: %r", spec.name, worker.pid, exc)
                worker.kill()
            reason = worker.exit_reason()
            if self._closed:  # shutdown() ended the worker, not the handler
                reason = "Runtime exited: the local Lambda runtime was shut down"
            self._discard(worker, kill=True)
            events.extend(log_events(logs))
            events.append((now_ms(), f"RequestId: {request_id} Error: {reason}\nRuntime.ExitError\n"))
            duration = (time.monotonic() - started) * 1000
            self.log.warning("%s: worker %d died during request %s: %s", spec.name, worker.pid, request_id, reason)
            error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: {reason}"}
            return self._finish(spec, worker, request_id, events, json.dumps(error).encode(), "Unhandled",
                                duration, init_ms, status="error", error_type="Runtime.ExitError")
        events.extend(log_events(logs))
        self._release(worker)
        function_error = None if meta.get("ok") else "Unhandled"
        if function_error is None and len(body) > MAX_SYNC_RESPONSE:
            function_error = "Unhandled"
            body = json.dumps({"errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                               f"({MAX_SYNC_RESPONSE} bytes).",
                               "errorType": "Function.ResponseSizeTooLarge"}).encode()
        return self._finish(spec, worker, request_id, events, body, function_error, meta.get("ms", 0.0), init_ms)

    def _finish(self, spec: FunctionSpec, worker: WorkerProcess | None, request_id: str, events: list,
                payload: bytes, function_error: str | None, duration_ms: float, init_ms: float | None, *,
                timed_out: bool = False, status: str | None = None, error_type: str | None = None) -> InvokeResult:
        now = now_ms()
        rss_kb = worker.rss_kb if worker else 0
        stream = worker.log_stream if worker and worker.log_stream else new_log_stream(spec)
        events.append((now, f"END RequestId: {request_id}\n"))
        events.append((now, report_line(spec, request_id, duration_ms, init_ms, rss_kb, status, error_type)))
        self._telemetry.add_logs(spec, stream, events)
        self._telemetry.add_metric(spec, "Invocations", 1, "Count")
        self._telemetry.add_metric(spec, "Errors", 1 if function_error else 0, "Count")
        self._telemetry.add_metric(spec, "Duration", duration_ms, "Milliseconds")
        return InvokeResult(payload=payload, function_error=function_error, timed_out=timed_out, throttled=False,
                            duration_ms=duration_ms, request_id=request_id, log="".join(m for _, m in events),
                            executed_version=spec.version, init_duration_ms=init_ms)

    def _cannot_run(self, spec: FunctionSpec, request_id: str) -> InvokeResult:
        error = {"errorType": "Runtime.InvalidRuntime",
                 "errorMessage": f"The local Lambda runtime runs Python zip functions only; {spec.name} is "
                                 f"{spec.package_type} {spec.runtime or '(no runtime)'}"}
        self._telemetry.add_metric(spec, "Invocations", 1, "Count")
        self._telemetry.add_metric(spec, "Errors", 1, "Count")
        return InvokeResult(payload=json.dumps(error).encode(), function_error="Unhandled", timed_out=False,
                            throttled=False, duration_ms=0.0, request_id=request_id, executed_version=spec.version)

    # -- cold starts ---------------------------------------------------------------

    def _spawn(self, *, preload: tuple[str, ...], extra_env: dict[str, str] | None = None) -> WorkerProcess:
        env = dict(self._base_env)
        if extra_env:
            env.update(extra_env)
        worker = WorkerProcess(env=env, preload=preload, all_packages=not self._lambda_packages_only,
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

    def _claim_spare(self, spec: FunctionSpec, code: bytes) -> WorkerProcess | None:
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
        except (WorkerExited, TimeoutError):
            self._discard(spare, kill=True)
            return None
        names = self._zip_names.get(spec.code_sha)
        if names is None:
            if len(self._zip_names) > 256:
                self._zip_names.clear()
            names = self._zip_names[spec.code_sha] = top_level_names(code)
        if spare.preloaded & names:
            with self._lock:
                if not self._closed:
                    self._spares.append(spare)
                    return None
            self._discard(spare, kill=True)
            return None
        return spare

    def _cold_start(self, fn, spec: FunctionSpec, logs: list) -> tuple[WorkerProcess, dict | None]:
        code = fn.code_bytes or b""
        try:
            session = self.sessions.for_function(spec.account_id, spec.region, spec.role, spec.name)
        except Exception as exc:  # never fall back to credentials with more rights than the role's
            self.log.exception("%s: could not assume its execution role %s", spec.name, spec.role)
            raise InitFailed(None, f"could not assume the execution role {spec.role!r}: {exc}") from exc
        worker = self._claim_spare(spec, code)
        if worker is None:
            python_env = {name: value for name, value in spec.environment if name.startswith("PYTHON")}
            try:
                worker = self._spawn(preload=(), extra_env=python_env)
            except OSError as exc:
                raise InitFailed(None, f"could not start a worker process: {exc}") from exc
        stream = new_log_stream(spec)
        deadline = time.monotonic() + max(INIT_TIMEOUT_SECONDS, spec.timeout)
        try:
            worker.wait_ready(deadline)
            worker.session = session
            meta, body = worker.init(spec=spec, log_stream=stream, code=code, deadline=deadline, logs=logs,
                                     env=function_environment(spec, stream, self.endpoint_url, session.environment()))
        except TimeoutError as exc:
            self._discard(worker, kill=True)
            raise InitFailed(worker, None) from exc
        except WorkerExited as exc:
            reason = worker.exit_reason()
            self._discard(worker, kill=True)
            raise InitFailed(worker, reason) from exc
        # Only now the next spare: booting it (about a core for 0.3 s) while this init runs
        # would slow the cold start that is being waited for.
        self._wake.set()
        if meta.get("op") == "init_error":
            return worker, json.loads(body)
        self.log.info("cold start of %s: worker %d, init %.1f ms", spec.name, worker.pid, worker.init_ms)
        return worker, None

    def _finish_failed_init(self, worker: WorkerProcess, spec: FunctionSpec, request_id: str, error: dict,
                            events: list) -> InvokeResult:
        # AWS throws the environment away and tries the init again on the next request.
        self._discard(worker, kill=True)
        events.append((now_ms(), f"START RequestId: {request_id} Version: {spec.version}\n"))
        self.log.warning("%s failed to initialise: %s: %s", spec.name, error.get("errorType"), error.get("errorMessage"))
        return self._finish(spec, worker, request_id, events, json.dumps(error).encode(), "Unhandled", 0.0,
                            worker.init_ms, status="error", error_type=error.get("errorType"))

    def _init_failure(self, spec: FunctionSpec, failure: InitFailed, request_id: str, logs: list,
                      elapsed_ms: float) -> InvokeResult:
        """The init phase itself timed out or the process died in it (a crash at import)."""
        events = log_events(logs)
        events.append((now_ms(), f"START RequestId: {request_id} Version: {spec.version}\n"))
        if failure.reason is None:
            limit = max(INIT_TIMEOUT_SECONDS, spec.timeout)
            message = f"{iso_now()} {request_id} Task timed out after {limit:.2f} seconds"
            events.append((now_ms(), message + "\n"))
            self.log.warning("%s: init timed out after %.0f s", spec.name, limit)
            return self._finish(spec, failure.worker, request_id, events, json.dumps({"errorMessage": message}).encode(),
                                "Unhandled", elapsed_ms, None, timed_out=True, status="timeout")
        error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: {failure.reason}"}
        events.append((now_ms(), f"RequestId: {request_id} Error: {failure.reason}\nRuntime.ExitError\n"))
        self.log.warning("%s: init failed: %s", spec.name, failure.reason)
        return self._finish(spec, failure.worker, request_id, events, json.dumps(error).encode(), "Unhandled",
                            elapsed_ms, None, status="error", error_type="Runtime.ExitError")

    # -- worker lifecycle ------------------------------------------------------------

    def _release(self, worker: WorkerProcess) -> None:
        worker.last_used = time.monotonic()
        with self._lock:
            spec = worker.spec
            current = self._current_key.get((spec.function_arn, spec.version))
            if not self._closed and current == spec.key and not self.sessions.expiring(getattr(worker, "session", None)):
                self._idle.setdefault(spec.key, []).append(worker)
                return
        self._retire(worker)

    def _retire(self, worker: WorkerProcess) -> None:
        """Stop a healthy worker that is no longer wanted (stale code, idle too long)."""
        with self._lock:
            self._workers.discard(worker)
            self._stopping.append(worker)
        worker.stop()
        self._wake.set()

    def _discard(self, worker: WorkerProcess, *, kill: bool) -> None:
        with self._lock:
            self._workers.discard(worker)
        if kill:
            worker.kill()

    def _worker_output(self, worker: WorkerProcess, lines: list[str]) -> None:
        if worker.spec is None or worker.log_stream is None:
            for line in lines:
                self.log.warning("lambda worker %d: %s", worker.pid, line)
            return
        now = now_ms()
        self._telemetry.add_logs(worker.spec, worker.log_stream, [(now, line + "\n") for line in lines])

    def _housekeeping(self) -> None:
        while not self._stop_housekeeping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self._telemetry.flush()
                if self._recheck.is_set():
                    self._recheck.clear()
                    self._retire_stale()
                self._reap_stopped()
                self._retire_idle()
                self._top_up_spares()
            except Exception:
                self.log.exception("Lambda runtime housekeeping failed")

    def _functions_may_have_changed(self) -> None:
        # Called by the server's write hook, before the write is answered: only note it here.
        self._recheck.set()
        self._wake.set()

    def _retire_stale(self) -> None:
        """After a write to moto: stop the idle workers of functions deleted or changed by it; busy
        ones stop when their invocation ends (_release no longer finds their key current)."""
        with self._lock:
            slots = dict(self._current_key)
        for slot, key in slots.items():
            arn, version = slot
            try:
                fn = find_function(arn, "", "", None if version == "$LATEST" else version)
                spec = FunctionSpec.from_moto(fn, getattr(fn, "account_id", ""), getattr(fn, "region", ""))
                now_key = spec.key
            except FunctionNotFound:
                now_key = None
            if now_key == key:
                continue
            with self._lock:
                if self._current_key.get(slot) != key:  # an invocation got there first
                    continue
                if now_key is None:
                    del self._current_key[slot]
                else:
                    self._current_key[slot] = now_key
                stale = self._idle.pop(key, [])
            if stale:
                self.log.info("stopping %d idle worker(s) of %s: the function was %s", len(stale), arn,
                              "deleted" if now_key is None else "updated")
            for worker in stale:
                self._retire(worker)

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
