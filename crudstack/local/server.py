"""The embedded local AWS: one process, one port.

    python -m crudstack.local.server --port 4566 --state-dir .local-aws [--host 127.0.0.1] [--lambda-concurrency 10]

Requests are dispatched by path (LocalAws):

    /restapis/{api}/{stage}/_user_request_/...   -> the API Gateway emulation (gateway.Gateway)
    /_aws/execute-api/{api}/{stage}/...
    POST /2015-03-31/functions/{name}/invocations -> the Lambda runtime (runtime.invoke_api_app)
    GET /_localaws/health                        -> {"status": "ok", "pid": ..., "port": ...}
    anything else                                -> moto's own WSGI app, behind the journal
                                                    (durable.DurableState.wsgi), DeploymentRecorder
                                                    and DynamoDBItemAtomicity for DynamoDB calls

State survives a stop, a crash and a reboot: <state-dir>/data holds snapshots and the write-ahead
journal (crudstack.local.durable), replayed at start-up before the first request is served; what
the start recovered, and anything it had to drop, is in <state-dir>/recovery.json. Alongside moto
run an alarm evaluator (crudstack.local.alarms) and SNS delivery to <state-dir>/outbox
(crudstack.local.notify).

The HTTP server is ours, not werkzeug's: werkzeug's development server closes the connection after
every response, and a Python server that writes headers and body in separate sends waits for the
client's delayed ACK (about 40 ms a response; /work/shared/PERF-NOTES.md). This one keeps HTTP/1.1
connections alive, sets TCP_NODELAY and writes each response with a single send.

Nothing is written to the terminal per request: the process logs to <state-dir>/server.log.
SIGTERM or SIGINT stops it cleanly: the listener closes, the runtime's workers are shut down,
pending metrics are flushed, a last snapshot is written and <state-dir>/server.json is removed.

moto never tries Docker here (see configure_moto); Lambda code runs in crudstack.local.runtime.
"""

from __future__ import annotations

import argparse
import email.utils
import http.server
import io
import json
import logging
import os
import signal
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import unquote_to_bytes, urlsplit

from crudstack.local import alarms, determinism, moto_gaps, moto_speedups
from crudstack.local.alarms import AlarmEvaluator
from crudstack.local.durable import DurableState, RecoveryReport, StatePart, StateUnreadable
from crudstack.local.gateway import (
    DeploymentRecorder,
    DeploymentSnapshots,
    Gateway,
    LambdaProxyInvoker,
    MetricsPublisher,
    is_invoke_path,
)
from crudstack.local.notify import OUTBOX_DIR, Outbox, SnsDelivery
from crudstack.local.telemetry import JournaledTelemetry

log = logging.getLogger("crudstack.local.server")

HEALTH_PATH = "/_localaws/health"
RECORD_NAME = "server.json"
LOG_NAME = "server.log"
# A keep-alive connection that stays idle this long is closed (its thread with it).
IDLE_TIMEOUT_S = 120
# Services the tutorial calls; their moto apps are built in the background at start-up, so the
# first provision call to each does not pay moto's lazy load (about 0.4 s each).
PREWARM_SERVICES = ("apigateway", "lambda", "dynamodb", "iam", "logs", "cloudwatch", "sns", "sts")

RECOVERY_NAME = "recovery.json"

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]
# endpoint url, max concurrency, logger, telemetry store -> (runtime with invoke()/invoke_async()/shutdown(),
# its Invoke API WSGI app)
RuntimeFactory = Callable[[str, int, logging.Logger, Any], "tuple[Any, WsgiApp]"]


# --------------------------------------------------------------------------------------------
# HTTP/1.1 keep-alive WSGI server
# --------------------------------------------------------------------------------------------

class _BodyTooLarge(Exception):
    pass


class KeepAliveWSGIRequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY
    timeout = IDLE_TIMEOUT_S
    server_version = "crudstack-localaws"
    sys_version = ""
    max_body = 512 * 1024 * 1024

    server: "LocalAwsHTTPServer"

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():  # also answers "Expect: 100-continue"
            return
        try:
            environ = self._environ()
        except _BodyTooLarge:
            self.send_error(413)
            self.close_connection = True
            return
        except ValueError:  # a Content-Length or chunk size that is not a number
            self.send_error(400, "Bad request body framing")
            self.close_connection = True
            return
        self._run(environ)

    def _environ(self) -> dict[str, Any]:
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target
            split = urlsplit(target)
            target = split.path + ("?" + split.query if split.query else "")
        raw_path, _, query = target.partition("?")
        headers = self.headers
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            # PEP 3333: the percent-decoded bytes, carried as latin-1.
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            # Header names as sent, repeats kept: the gateway's event wants them.
            "localaws.headers": headers.items(),
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            elif "_" not in name:  # as werkzeug: drop names that would collide with dashes
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value

        # Read the whole body now: the connection must be drained before the next request on it.
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["CONTENT_LENGTH"] = str(len(body))
        else:
            length = int(headers.get("Content-Length") or 0)
            if length > self.max_body:
                raise _BodyTooLarge()
            body = self.rfile.read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > self.max_body:
                raise _BodyTooLarge()
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _run(self, environ: dict[str, Any]) -> None:
        state: dict[str, Any] = {}
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            # Nothing is sent before the app returns, so a second call (with exc_info) may always
            # replace the status and headers.
            state["status"], state["headers"] = status, headers
            return written.append  # the legacy write() callable

        try:
            result = self.server.app(environ, start_response)
            try:
                for chunk in result:
                    written.append(chunk)
            finally:
                if hasattr(result, "close"):
                    result.close()
            body = b"".join(written)
        except Exception:
            log.exception("unhandled error serving %s %s", self.command, self.path)
            state = {"status": "500 Internal Server Error", "headers": [("Content-Type", "application/json")]}
            body = b'{"message": "Internal server error"}'
        self._send(state["status"], state["headers"], body)

    def _send(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        code = int(status.split(" ", 1)[0])
        lines = [f"HTTP/1.1 {status}"]
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower in ("connection", "transfer-encoding", "keep-alive"):
                continue  # the connection is ours to manage
            if lower == "content-length":
                has_length = True
            value = str(value)
            if "\r" in value or "\n" in value:  # a value must not start a header (or a response) of its own
                value = " ".join(value.splitlines())
            lines.append(f"{name}: {value}")
        no_body = self.command == "HEAD" or code < 200 or code in (204, 304)
        if not has_length and not (code < 200 or code in (204, 304)):
            lines.append(f"Content-Length: {len(body)}")
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        # One send for head and body: no Nagle/delayed-ACK stall between the two.
        self.wfile.write(head if no_body else head + body)

    def log_message(self, format: str, *args: Any) -> None:
        # BaseHTTPRequestHandler's access/error lines would go to stderr: keep them in the log file.
        log.debug("%s %s", self.address_string(), format % args)


class LocalAwsHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, app: WsgiApp | None = None):
        super().__init__((host, port), KeepAliveWSGIRequestHandler)
        self.app = app

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN: a DNS lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("connection from %s failed", client_address)


# --------------------------------------------------------------------------------------------
# The dispatcher
# --------------------------------------------------------------------------------------------

class LocalAws:
    """Routes each request to the gateway, the Lambda Invoke API, the health check or moto."""

    def __init__(self, *, gateway: WsgiApp, invoke_api: WsgiApp, moto_app: WsgiApp, health: dict[str, Any]):
        self.gateway = gateway
        self.invoke_api = invoke_api
        self.moto_app = moto_app
        self._health_body = json.dumps(health).encode()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if is_invoke_path(path):
            return self.gateway(environ, start_response)
        if environ["REQUEST_METHOD"] == "POST" and path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
            return self.invoke_api(environ, start_response)
        if path == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(self._health_body)))])
            return [self._health_body]
        return self.moto_app(environ, start_response)


class DynamoDBItemAtomicity:
    """WSGI middleware in front of moto: one DynamoDB request at a time.

    DynamoDB applies each write to an item atomically, its condition included: of two conditional
    writes racing on one item, one fails, and a read never sees half an update. moto checks the
    condition and then writes, with no lock, so two threads can both pass the check (seen here:
    20 parallel updates conditioned on one version let two succeed in 6 rounds of 30), and an
    optimistic-locking API would lose updates. moto's DynamoDB is CPU-bound under the GIL anyway,
    so serialising its requests costs little.
    """

    TARGET_PREFIX = "DynamoDB_20120810."

    def __init__(self, app: WsgiApp):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(self.TARGET_PREFIX):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()


def configure_moto() -> None:
    """Load AWS's managed policies into IAM, make sure moto never tries Docker, and cache the work
    moto would redo on every request (crudstack.local.moto_speedups).

    moto leaves out AWS managed policies unless asked, so the tutorial's AmazonDynamoDBFullAccess
    and CloudWatchFullAccess (role.tutorial_managed_policies) would not exist; loading them
    costs about 0.05 s when IAM is first used.

    moto runs Lambda (and Batch) code in Docker containers; every such path goes through
    DockerModel.docker_client. Here no container is ever wanted: functions run in
    crudstack.local.runtime, which reads them from moto's default Lambda backend
    (moto.awslambda.models.lambda_backends). moto's `lambda: {use_docker: False}` config would
    move functions to another backend (moto.awslambda_simple) where the runtime would not see
    them, so instead the Docker client itself is made unavailable: a path that would start a
    container fails at once with an AttributeError, without contacting Docker. Attribute
    walkers such as /moto-api/data.json skip the attribute instead of failing.
    """
    from moto import settings
    from moto.utilities.docker_utilities import DockerModel

    settings.default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True

    def no_docker(_model: Any) -> Any:
        raise AttributeError("the local AWS runs without Docker: Lambda functions run in crudstack.local.runtime")

    DockerModel.docker_client = property(no_docker)  # type: ignore[assignment]
    moto_speedups.install()
    moto_gaps.install()


def build_moto_app() -> Any:
    # The same app ThreadedMotoServer and moto_server build.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def prewarm(moto_app: Any, services: Iterable[str] = PREWARM_SERVICES) -> None:
    """Build moto's per-service Flask apps now instead of on each service's first request."""
    for service in services:
        try:
            with moto_app.lock:
                if service not in moto_app.app_instances:
                    moto_app.app_instances[service] = moto_app.create_app(service)
        except Exception:
            log.exception("could not prepare moto's %s app; it will load on first use", service)


def load_service_modules(services: Iterable[str] = PREWARM_SERVICES + ("sqs",)) -> None:
    """Import moto's models and responses for the services we use before the clock is hooked
    (crudstack.local.determinism), so that even their first write runs on the journal's clock."""
    import importlib

    from moto.backends import ALT_SERVICE_NAMES

    for service in services:
        module = ALT_SERVICE_NAMES.get(service, service)
        for part in ("models", "responses"):
            try:
                importlib.import_module(f"moto.{module}.{part}")
            except ImportError:
                log.warning("moto has no module moto.%s.%s", module, part)


def real_runtime(endpoint_url: str, max_concurrency: int, runtime_log: logging.Logger,
                 telemetry: Any = None) -> tuple[Any, WsgiApp]:
    from crudstack.local.runtime import LambdaRuntime, invoke_api_app

    runtime = LambdaRuntime(endpoint_url=endpoint_url, max_concurrency=max_concurrency, log=runtime_log,
                            telemetry=telemetry)
    return runtime, invoke_api_app(runtime)


# --------------------------------------------------------------------------------------------
# Process: logging, state record, signals
# --------------------------------------------------------------------------------------------

@dataclass
class Options:
    port: int
    state_dir: Path
    host: str = "127.0.0.1"
    lambda_concurrency: int = 10
    log_level: str = "INFO"


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m crudstack.local.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free port, see server.json)")
    parser.add_argument("--state-dir", type=Path, required=True, help="where server.json and server.log go")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--lambda-concurrency", type=int, default=10, help="parallel invocations per function")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if args.lambda_concurrency < 1:
        parser.error("--lambda-concurrency must be at least 1")
    return Options(args.port, args.state_dir.resolve(), args.host, args.lambda_concurrency, args.log_level)


def configure_logging(state_dir: Path, level: str) -> Path:
    """Everything (ours, moto's, flask's, werkzeug's) to <state-dir>/server.log, nothing to the terminal."""
    log_path = state_dir / LOG_NAME
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # werkzeug adds its own stderr handler unless one is reachable, and logs at INFO.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return log_path


def write_record(state_dir: Path, record: dict[str, Any]) -> None:
    path = state_dir / RECORD_NAME
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove_record(state_dir: Path, pid: int) -> None:
    """Remove server.json if it is still this process's (a newer server may have replaced it)."""
    path = state_dir / RECORD_NAME
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def serve(options: Options, *, make_runtime: RuntimeFactory = real_runtime) -> int:
    state_dir = options.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = configure_logging(state_dir, options.log_level)
    configure_moto()

    try:
        httpd = LocalAwsHTTPServer(options.host, options.port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", options.host, options.port, exc)
        print(f"local AWS: cannot listen on {options.host}:{options.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = httpd.server_address[1]
    endpoint = f"http://{options.host}:{port}"
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs (queue URLs, ...) with it

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    moto_app = build_moto_app()
    snapshots = DeploymentSnapshots()
    # The app journaled writes are served by, and replayed into at start-up.
    recorder = DeploymentRecorder(DynamoDBItemAtomicity(moto_app), snapshots)
    state, telemetry, delivery = prepare_durable_state(state_dir, recorder, snapshots, endpoint)
    try:
        report = state.recover()
    except StateUnreadable as exc:
        log.error("%s", exc)
        print(f"local AWS: {exc}.\n  Nothing was changed. To keep the data, move {state.folder} away and look into "
              f"it; to start over with an empty local AWS, run: python -m crudstack.local wipe", file=sys.stderr)
        httpd.server_close()
        return 1
    write_recovery(state_dir, report)
    state.start()
    metrics = MetricsPublisher(telemetry.cloudwatch_backends()).start()
    evaluator = None
    runtime = None
    invoker = None
    serving = None
    try:
        try:
            runtime, invoke_api = make_runtime(endpoint, options.lambda_concurrency,
                                               logging.getLogger("crudstack.local.runtime"), telemetry)
        except Exception as exc:
            log.exception("the Lambda runtime could not be started")
            print(f"local AWS: the Lambda runtime could not be started: {exc} (see {log_path})", file=sys.stderr)
            return 1
        delivery.runtime = runtime
        invoker = LambdaProxyInvoker(runtime)
        httpd.app = LocalAws(
            gateway=Gateway(snapshots, invoker, metrics),
            invoke_api=invoke_api,
            moto_app=state.wsgi(recorder),
            health={"status": "ok", "pid": os.getpid(), "port": port, "state_dir": str(state_dir)},
        )
        evaluator = AlarmEvaluator(state.apply).start()
        # The socket already listens (connections wait in its backlog): record it before the first
        # health answer, so whoever sees the server healthy also finds its record.
        write_record(state_dir, {
            "pid": os.getpid(), "port": port, "host": options.host, "endpoint": endpoint,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "log": str(log_path),
            "lambda_concurrency": options.lambda_concurrency, "recovery": report.summary(),
        })
        serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True)
        serving.start()
        threading.Thread(target=prewarm, args=(moto_app,), name="prewarm", daemon=True).start()
        log.info("local AWS listening on %s (pid %d, state dir %s)", endpoint, os.getpid(), state_dir)
        while not stop.wait(1.0):
            pass
    finally:
        if serving is not None:
            httpd.shutdown()
        httpd.server_close()
        if evaluator is not None:
            evaluator.close()
        if invoker is not None:
            invoker.close()
        if runtime is not None:
            try:
                runtime.shutdown()  # writes its last logs and metrics, through the journal
            except Exception:
                log.exception("the Lambda runtime did not shut down cleanly")
        metrics.close()
        try:
            state.close()  # a last snapshot: the next start replays nothing
        except Exception:
            log.exception("the state could not be saved cleanly; the journal holds it")
        remove_record(state_dir, os.getpid())
        log.info("local AWS stopped")
        logging.shutdown()
    return 0


def prepare_durable_state(state_dir: Path, recorder: WsgiApp, snapshots: DeploymentSnapshots,
                          endpoint: str) -> tuple[DurableState, JournaledTelemetry, SnsDelivery]:
    """The durable state with everything that writes through it: moto's writes over HTTP (the
    recorder), logs and metrics, alarm state changes; plus alarms and SNS delivery hooked into moto."""
    load_service_modules()
    determinism.install()
    alarms.install_extensions()
    delivery = SnsDelivery(Outbox(state_dir / OUTBOX_DIR), endpoint)
    delivery.install()
    state = DurableState(state_dir, recorder)
    state.add_part("gateway.deployments", StatePart(snapshots.dump, snapshots.load))
    state.register("cloudwatch.set_alarm_state", alarms.set_alarm_state)
    return state, JournaledTelemetry(state), delivery


def write_recovery(state_dir: Path, report: RecoveryReport) -> None:
    """<state-dir>/recovery.json: what the last start recovered, and what it had to drop (shown by provision.py)."""
    path = state_dir / RECOVERY_NAME
    tmp = path.with_name(f".{RECOVERY_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**report.as_dict(), "reported": not report.problems}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None, *, make_runtime: RuntimeFactory = real_runtime) -> int:
    return serve(parse_args(argv), make_runtime=make_runtime)


if __name__ == "__main__":
    sys.exit(main())
