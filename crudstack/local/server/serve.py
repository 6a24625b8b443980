"""The composition root of the local AWS: builds every layer, recovers the saved state, serves
until SIGTERM or SIGINT, and stops cleanly (server/__init__.py tells the whole story).

    python -m crudstack.local.server --port 4566 --state-dir .local-aws [--host 127.0.0.1] [--lambda-concurrency 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from crudstack.local import moto_backends, patches, request, switches
from crudstack.local.apigateway.app import Gateway
from crudstack.local.apigateway.auth import IamAuthorizer
from crudstack.local.apigateway.models import DeploymentSnapshots
from crudstack.local.apigateway.proxy import LambdaProxyInvoker
from crudstack.local.apigateway.recorder import DeploymentRecorder
from crudstack.local.cloudwatch import history
from crudstack.local.cloudwatch.evaluator import AlarmEvaluator, set_alarm_state
from crudstack.local.cloudwatch.metrics import MetricsBatcher
from crudstack.local.cloudwatch.telemetry import JournaledTelemetry
from crudstack.local.console.data import ConsoleData
from crudstack.local.console.responses import Console
from crudstack.local.dynamodb.atomicity import DynamoDBItemAtomicity
from crudstack.local.dynamodb.fastpath import DirectDynamoDB
from crudstack.local.iam.credentials import local_credentials
from crudstack.local.iam.denials import DenialJournal
from crudstack.local.iam.models import AccessCheck
from crudstack.local.iam.middleware import EnforceIdentityPolicies
from crudstack.local.iam.sessions import ASSUME_ROLE_OP, assume_role
from crudstack.local.server.dispatch import LocalAws
from crudstack.local.server.httpserver import LocalAwsHTTPServer
from crudstack.local.server.record import LOG_NAME, RECORD_NAME, remove_record, write_record, write_recovery
from crudstack.local.sns.delivery import SnsDelivery
from crudstack.local.sns.outbox import OUTBOX_DIR, Outbox
from crudstack.local.patches import determinism
from crudstack.local.state.durable import DurableState, StatePart
from crudstack.local.state.exceptions import StateUnreadable
from crudstack.local.state.private import private_folder
from crudstack.local.wsgi import WsgiApp

log = logging.getLogger("crudstack.local.server")

# Services the tutorial calls; their moto apps are built in the background at start-up, so the
# first provision call to each does not pay moto's lazy load (about 0.4 s each).
PREWARM_SERVICES = ("apigateway", "lambda", "dynamodb", "iam", "logs", "cloudwatch", "sns", "sts")

# endpoint url, max concurrency, logger, telemetry store -> (runtime with invoke()/invoke_async()/shutdown(),
# its Invoke API WSGI app)
RuntimeFactory = Callable[[str, int, logging.Logger, Any], "tuple[Any, WsgiApp]"]


def build_moto_app() -> Any:
    return moto_backends.moto_app()


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
    (crudstack.local.patches.determinism), so that even their first write runs on the journal's clock."""
    import importlib

    for service in services:
        module = moto_backends.service_module(service)
        for part in ("models", "responses"):
            try:
                importlib.import_module(f"moto.{module}.{part}")
            except ImportError:
                log.warning("moto has no module moto.%s.%s", module, part)


# --------------------------------------------------------------------------------------------
# The layers, in one place
# --------------------------------------------------------------------------------------------
#
# An invoke URL goes to the gateway (apigateway/app.py), the console to console/, both by path; the
# rest is the control plane. The edge (dispatch.py) routes it and understands it once
# (crudstack/local/request.py: service, operation, write or read, signer, region); then, outermost first:
#
#   iam/middleware.py        EnforceIdentityPolicies  a key the local AWS knows signed it; a role session's policies allow it
#   state/durable.py         DurableState.wsgi        a write runs alone, is journaled and is answered once durable
#   --- replay_layers: what the journal replays into at start-up ---
#   dynamodb/atomicity.py    DynamoDBItemAtomicity    one DynamoDB call at a time: DynamoDB's per-item atomicity
#   dynamodb/fastpath.py     DirectDynamoDB           a DynamoDB call straight to moto's handler (speed: switches.py)
#   apigateway/recorder.py   DeploymentRecorder       a copy of the API at CreateDeployment (DynamoDB never reaches it)
#   moto's app
#
# The Lambda Invoke API (awslambda/responses.py) sits behind the same access check.

Layer = Callable[[WsgiApp], WsgiApp]


def compose(app: WsgiApp, layers: Iterable[Layer]) -> WsgiApp:
    """`app` inside `layers`, the first of them outermost."""
    for layer in reversed(list(layers)):
        app = layer(app)
    return app


def replay_layers(snapshots: DeploymentSnapshots) -> list[Layer]:
    fastpath = [DirectDynamoDB] if switches.DYNAMODB_FASTPATH else []
    return [DynamoDBItemAtomicity, *fastpath, lambda app: DeploymentRecorder(app, snapshots)]


def authenticated(access: AccessCheck, service: str | None = None) -> Layer:
    """service: the signing name an app reached by its path must be scoped to (the Invoke API: 'lambda')."""
    return lambda app: EnforceIdentityPolicies(app, access, service=service)


def real_runtime(endpoint_url: str, max_concurrency: int, runtime_log: logging.Logger,
                 telemetry: Any = None) -> tuple[Any, WsgiApp]:
    from crudstack.local.awslambda.responses import invoke_api_app
    from crudstack.local.awslambda.runtime import LambdaRuntime

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
    parser.add_argument("--lambda-concurrency", type=int, default=10,
                        help="warm workers per function; more invocations wait for one")
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


def _claim(state_dir: Path) -> int | None:
    """An exclusive lock on the state dir for this server's life (flock on <state-dir>/.server.lock), or
    None when another server holds it. The daemon already refuses a second server for one state dir;
    this also covers servers started by hand."""
    import fcntl

    from crudstack.local.state.private import open_private

    fd = open_private(state_dir / ".server.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _running_pid(state_dir: Path) -> str:
    """' (pid N)' from the running server's record, when it can be read."""
    import json

    try:
        return f" (pid {int(json.loads((state_dir / RECORD_NAME).read_text(encoding='utf-8'))['pid'])})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def serve(options: Options, *, make_runtime: RuntimeFactory = real_runtime) -> int:
    state_dir = options.state_dir
    # Everything the server writes is its user's alone: the state holds secrets, and its snapshots
    # are pickles (crudstack/local/state/private.py).
    os.umask(0o077)
    try:
        private_folder(state_dir)
        # The tool's own credentials (the root user): the only ones besides IAM users' keys and role
        # sessions that the control plane accepts; workers never see them. Read first: a damaged file
        # is said plainly, before anything starts.
        root = local_credentials(state_dir)
    except StateUnreadable as exc:
        print(f"local AWS: {exc}", file=sys.stderr)
        return 1
    claim = _claim(state_dir)  # held (open) until serve returns: the kernel lets it go when the process ends
    if claim is None:
        print(f"local AWS: another local AWS{_running_pid(state_dir)} already serves {state_dir}: two servers "
              f"would both write its journal. Use that one, or stop it first.", file=sys.stderr)
        return 1
    log_path = configure_logging(state_dir, options.log_level)
    patches.configure_moto()

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
    # What journaled writes are served by, and replayed into at start-up: the inner part of the list above.
    replayed = compose(moto_app, replay_layers(snapshots))
    state, telemetry, delivery = prepare_durable_state(state_dir, replayed, snapshots, endpoint)
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
    metrics = MetricsBatcher(telemetry.cloudwatch_backends()).start()
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
        access = AccessCheck(DenialJournal(state_dir), root=root)
        # What the request path reads from moto is cached from now on, until a write other than
        # DynamoDB's (crudstack/local/cache.py). The invoker shares the runtime's cache when it has one.
        # The access check's decisions are among them: an IAM write empties them before it is answered.
        caches = list({id(cache): cache for cache in (snapshots.targets, invoker.lookups, access.decisions,
                                                      getattr(runtime, "lookups", None)) if cache is not None}.values())
        state.on_write(lambda environ: None if request.of(environ).dynamodb else [cache.changed() for cache in caches])
        if switches.READ_CACHES:
            for cache in caches:
                cache.enable()
        httpd.app = LocalAws(
            gateway=Gateway(snapshots, invoker, metrics, iam=IamAuthorizer(snapshots.targets, root=root)),
            invoke_api=compose(invoke_api, [authenticated(access, service="lambda")]),
            moto_app=compose(replayed, [authenticated(access), state.wsgi]),
            health={"status": "ok", "pid": os.getpid(), "port": port, "state_dir": str(state_dir)},
            console=Console(ConsoleData(endpoint, Outbox(state_dir / OUTBOX_DIR), root.for_boto3())),
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


def prepare_durable_state(state_dir: Path, replayed: WsgiApp, snapshots: DeploymentSnapshots,
                          endpoint: str) -> tuple[DurableState, JournaledTelemetry, SnsDelivery]:
    """The durable state with everything that writes through it: moto's writes over HTTP (the
    replay layers), logs and metrics, alarm state changes; plus alarms and SNS delivery hooked into moto."""
    load_service_modules()
    determinism.install()
    delivery = SnsDelivery(Outbox(state_dir / OUTBOX_DIR), endpoint)
    patches.install_behaviour(delivery)
    state = DurableState(state_dir, replayed)
    state.add_part("gateway.deployments", StatePart(snapshots.dump, snapshots.load))
    state.add_part("cloudwatch.history", StatePart(history.dump_history, history.load_history))
    state.register("cloudwatch.set_alarm_state", set_alarm_state)
    state.register(ASSUME_ROLE_OP, assume_role)  # the Lambda workers' role sessions
    return state, JournaledTelemetry(state), delivery

def main(argv: list[str] | None = None, *, make_runtime: RuntimeFactory = real_runtime) -> int:
    return serve(parse_args(argv), make_runtime=make_runtime)


if __name__ == "__main__":
    sys.exit(main())
