"""One Lambda execution environment: the process the runtime (awslambda/runtime.py) runs a function in.

    python -m crudstack.local.awslambda.worker --task-root DIR [--preload boto3,...] [--all-packages] [--run-as UID]

AWS runs each function in its own sandbox, imports the handler once per sandbox (a
"cold start") and then feeds it one event at a time for as long as the sandbox stays
warm. This process is that sandbox: the runtime starts it, sends it the function's zip,
environment and handler name, and then one invocation after another.

Protocol
--------
The runtime talks to the worker over the worker's stdin (runtime -> worker) and stdout
(worker -> runtime). Both are taken over at start-up: the worker moves them to private
file descriptors and points fd 0 at /dev/null and fd 1 at fd 2, so nothing the handler
does (print, a C library writing to fd 1, a subprocess) can ever write into the protocol.
Python-level output (sys.stdout, sys.stderr, the logging module) is captured and sent as
log frames; output written straight to fd 1/2 reaches the runtime on the worker's stderr
pipe and is logged too.

The frames are described in crudstack/local/awslambda/protocol.py.

A worker exits when its stdin reaches end-of-file, and a watchdog thread makes it exit
as soon as the runtime's end of the pipe is gone even while a handler is busy, so a
worker never outlives the runtime. It removes its task directory on the way out.

Least privilege
---------------
The worker starts in its task root (never in the repository), with the environment Lambda defines
and nothing else of the server's (awslambda/environment.py). Started as root (CI, containers) with
--run-as, it gives its task root to that user id and becomes it (no groups) after the preload and
before anything of the function is unpacked or run, so that the function cannot read other functions'
task roots (0700, each its own user), the local AWS's state dir (0700) or other files only root may
read. It does so only when the Python it runs (the standard library, site-packages, the preloaded
packages) is readable by other users; otherwise it stays root and its ready frame says why (README,
"What the local AWS protects, and what it cannot").

This module imports only the standard library and awslambda/protocol.py: it is on the cold-start path.
"""

from __future__ import annotations

import argparse
import decimal
import importlib
import importlib.abc
import importlib.machinery
import io
import json
import logging
import math
import os
import resource
import select
import shutil
import site
import sys
import threading
import time
import traceback
import zipfile

from crudstack.local.awslambda.protocol import FrameReader, encode_frame, write_all

_OWN_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))

# ---------------------------------------------------------------------------
# What the handler sees.

# Third-party packages AWS's Python runtime provides (boto3 and its dependencies); pip and
# setuptools sit in its site-packages too. Everything else must come with the zip.
LAMBDA_RUNTIME_PACKAGES = frozenset({
    "boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
    "pip", "setuptools", "pkg_resources", "_distutils_hack",
})


class OnlyWhatLambdaHas(importlib.abc.MetaPathFinder):
    """Hides packages that are installed on this machine but not in AWS's Python runtime,
    so a handler that forgot to bundle one (requests, yaml, ...) fails here as it would
    there: "Unable to import module 'app': No module named 'requests'"."""

    def __init__(self):
        dirs = [*site.getsitepackages(), site.getusersitepackages()]
        self._site_dirs = tuple(os.path.realpath(d) + os.sep for d in dirs if d)
        self.hidden: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if path is not None or name in sys.stdlib_module_names or name in LAMBDA_RUNTIME_PACKAGES:
            return None  # submodules, the standard library and boto3 & co. import as usual
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is None:
            return None
        if spec.has_location and spec.origin:
            places = [spec.origin]
        else:
            places = list(spec.submodule_search_locations or [])
        if places and all(os.path.realpath(place).startswith(self._site_dirs) for place in places):
            self.hidden.add(name)
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None  # the zip's own, or a PYTHONPATH the function set: the normal finders take it


class ClientContext:
    """context.client_context for callers that pass X-Amz-Client-Context."""

    def __init__(self, data: dict):
        self.client = data.get("client")
        self.custom = data.get("custom")
        self.env = data.get("env")


class CognitoIdentity:
    def __init__(self, data: dict | None):
        data = data or {}
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class LambdaContext:
    """The `context` argument, with the attributes AWS's Python runtime provides.
    memory_limit_in_mb is a string there (it comes from the environment), so here too."""

    def __init__(self, *, request_id: str, deadline_ms: int, invoked_arn: str, function: dict,
                 client_context: dict | None, identity: dict | None):
        self.aws_request_id = request_id
        self.function_name = function["name"]
        self.function_version = function["version"]
        self.invoked_function_arn = invoked_arn
        self.memory_limit_in_mb = str(function["memory_size"])
        self.log_group_name = function["log_group"]
        self.log_stream_name = function["log_stream"]
        self.client_context = ClientContext(client_context) if client_context else None
        self.identity = CognitoIdentity(identity)
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)
        sys.stdout.flush()

    def __repr__(self) -> str:
        return (f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
                f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
                f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
                f"invoked_function_arn={self.invoked_function_arn}])")


def _decimal_default(value):
    # AWS's runtime writes a Decimal as a JSON number (DynamoDB items are full of them).
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return math.nan
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_result_encoder = json.JSONEncoder(default=_decimal_default, ensure_ascii=False)


def error_object(exc: BaseException, request_id: str, *, error_type: str | None = None,
                 message: str | None = None, skip_frames: int = 0) -> dict:
    """The Lambda error object, {"errorMessage", "errorType", "requestId", "stackTrace"}."""
    frames = traceback.extract_tb(exc.__traceback__)[skip_frames:]
    return {
        "errorMessage": str(exc) if message is None else message,
        "errorType": error_type or type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }


# ---------------------------------------------------------------------------
# The worker itself.


class _Channel:
    """The protocol pipes, moved off fds 0 and 1 so the handler cannot touch them."""

    def __init__(self) -> None:
        self.in_fd = os.dup(0)
        self.out_fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        self.reader = FrameReader(self.in_fd)
        self._lock = threading.Lock()

    def send(self, meta: dict, body: bytes = b"") -> None:
        frame = encode_frame(meta, body)
        with self._lock:
            write_all(self.out_fd, frame)

    def send_log(self, text: str, *, whole: bool = False) -> None:
        if text:
            self.send({"op": "log", "ts": int(time.time() * 1000), "whole": whole},
                      text.encode("utf-8", "backslashreplace"))


class _LogStream(io.TextIOBase):
    """sys.stdout / sys.stderr: line-buffered text that becomes log frames."""

    def __init__(self, channel: _Channel, fd: int, name: str):
        self._channel = channel
        self._fd = fd
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self.name = name
        self.buffer = _BinaryLogStream(self)

    encoding = "utf-8"
    errors = "backslashreplace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._pending.append(text)
            if "\n" in text:  # send the complete lines; a partial one waits for its end
                pending = "".join(self._pending)
                cut = pending.rfind("\n") + 1
                self._pending[:] = [pending[cut:]] if cut < len(pending) else []
                self._channel.send_log(pending[:cut])
        return len(text)

    def flush(self) -> None:
        """Also sends a partial line: called at the end of every invocation."""
        with self._lock:
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                self._channel.send_log(text)


class _BinaryLogStream(io.RawIOBase):
    """sys.stdout.buffer, for code that writes bytes."""

    def __init__(self, text_stream: _LogStream):
        self._text = text_stream

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._text.write(bytes(data).decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self) -> None:
        self._text.flush()


class _LambdaLogHandler(logging.Handler):
    """What AWS's runtime puts on the root logger: one log event per record, with the
    level, a UTC timestamp and the request id. The root level stays WARNING, as there."""

    def __init__(self, worker: "Worker"):
        super().__init__()
        self._worker = worker
        formatter = logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                                      "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.aws_request_id = self._worker.request_id
            self._worker.channel.send_log(self.format(record) + "\n", whole=True)
        except Exception:
            self.handleError(record)


class Worker:
    def __init__(self, task_root: str, finder: OnlyWhatLambdaHas | None = None):
        self.task_root = task_root
        self.finder = finder
        self.channel = _Channel()
        self.request_id = ""
        self.function: dict = {}
        self.handler = None
        self._exit_lock = threading.Lock()

    # -- lifetime ----------------------------------------------------------

    def exit(self, code: int = 0) -> None:
        """Leave now, task directory removed. os._exit: a handler's threads must not
        keep a sandbox alive that the runtime has already given up."""
        with self._exit_lock:
            shutil.rmtree(self.task_root, ignore_errors=True)
            os._exit(code)

    def watch_parent(self) -> None:
        # Registered for no events at all, poll still reports POLLHUP: it wakes only when
        # the runtime's end of the pipe is closed (runtime gone, or the worker stopped).
        poller = select.poll()
        poller.register(self.channel.in_fd, 0)
        while True:
            for _fd, events in poller.poll():
                if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self.exit(0)

    def receive(self) -> tuple[dict, bytes]:
        frame = self.channel.reader.read()
        if frame is None:
            self.exit(0)
        return frame

    # -- init ----------------------------------------------------------------

    def init(self, meta: dict, code: bytes) -> None:
        started = time.perf_counter()
        self.function = meta["function"]
        os.environ.update(meta["env"])
        os.environ["LAMBDA_TASK_ROOT"] = self.task_root
        time.tzset()  # the function may set TZ
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(self.task_root)
        sys.path.insert(0, self.task_root)
        os.chdir(self.task_root)
        sys.stdout = _LogStream(self.channel, 1, "<stdout>")
        sys.stderr = _LogStream(self.channel, 2, "<stderr>")
        logging.getLogger().addHandler(_LambdaLogHandler(self))
        error = self._load_handler(meta["handler"])
        sys.stdout.flush()
        sys.stderr.flush()
        reply = {"ms": (time.perf_counter() - started) * 1000, "rss_kb": _max_rss_kb()}
        if error is None:
            self.channel.send({"op": "init_done", **reply})
        else:
            self.channel.send({"op": "init_error", **reply}, json.dumps(error).encode("utf-8"))

    def _load_handler(self, handler_name: str) -> dict | None:
        """Import the handler's module and find the function, or return the error
        object AWS's runtime reports for that kind of failure."""
        try:
            module_name, function_name = handler_name.rsplit(".", 1)
        except ValueError as exc:
            return self._init_error(exc, "Runtime.MalformedHandlerName", f"Bad handler '{handler_name}': {exc}")
        module_name = module_name.replace("/", ".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            return self._init_error(exc, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
        except SyntaxError as exc:
            return self._init_error(exc, "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}")
        except Exception as exc:
            return self._init_error(exc, None, None)
        handler = getattr(module, function_name, None)
        if handler is None:
            return {"errorMessage": f"Handler '{function_name}' missing on module '{module_name}'",
                    "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []}
        self.handler = handler
        return None

    def _hint_if_hidden(self, exc: BaseException) -> None:
        # Not an AWS log line: a local hint, because "No module named" alone misleads when
        # the package is right there on this machine.
        if isinstance(exc, ModuleNotFoundError) and self.finder and exc.name in self.finder.hidden:
            self.channel.send_log(f"[crudstack local runtime] '{exc.name}' is installed on this machine but is not "
                                  f"part of AWS Lambda's Python runtime: bundle it in the deployment package\n",
                                  whole=True)

    def _init_error(self, exc: BaseException, error_type: str | None, message: str | None) -> dict:
        self._hint_if_hidden(exc)
        error = error_object(exc, "", error_type=error_type, message=message)
        if error_type is None:
            # An exception raised by the module's own code: its frames start after the
            # last one of importlib (AWS shows the user's frames only).
            frames = traceback.extract_tb(exc.__traceback__)
            last = max((i for i, frame in enumerate(frames) if _is_importlib(frame.filename)), default=0)
            error["stackTrace"] = traceback.format_list(frames[last + 1:])
        else:
            error["stackTrace"] = []  # the Runtime.* errors carry none on AWS
        self._log_error(error)
        return error

    # -- invoke --------------------------------------------------------------

    def invoke(self, meta: dict, body: bytes) -> None:
        request_id = meta["id"]
        self.request_id = request_id
        context = LambdaContext(request_id=request_id, deadline_ms=meta["deadline"], invoked_arn=meta["arn"],
                                function=self.function, client_context=meta.get("client_context"),
                                identity=meta.get("identity"))
        ok = True
        started = time.perf_counter()
        try:
            event = json.loads(body) if body.strip() else {}
            result = self.handler(event, context)
        except Exception as exc:
            ok = False
            payload = error_object(exc, request_id, skip_frames=1)
            self._hint_if_hidden(exc)
        duration_ms = (time.perf_counter() - started) * 1000
        if ok:
            try:
                output = _result_encoder.encode(result).encode("utf-8")
            except (TypeError, ValueError, OverflowError) as exc:
                ok = False
                payload = {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError",
                           "requestId": request_id, "stackTrace": []}
        if not ok:
            self._log_error(payload)
            output = json.dumps(payload).encode("utf-8")
        sys.stdout.flush()
        sys.stderr.flush()
        self.request_id = ""
        self.channel.send({"op": "result", "ok": ok, "ms": duration_ms, "rss_kb": _max_rss_kb()}, output)

    def _log_error(self, error: dict) -> None:
        # AWS logs an unhandled error as one event: "[ERROR] Type: message" and the traceback.
        lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
        if error["stackTrace"]:
            lines.append("Traceback (most recent call last):")
            lines.extend(entry.rstrip("\n") for entry in error["stackTrace"])
        self.channel.send_log("\n".join(lines) + "\n", whole=True)

    def serve(self) -> None:
        meta, body = self.receive()
        if meta.get("op") != "init":
            raise RuntimeError(f"expected an init frame, got {meta.get('op')!r}")
        self.init(meta, body)
        while True:
            meta, body = self.receive()
            if meta.get("op") == "invoke":
                self.invoke(meta, body)
            else:
                raise RuntimeError(f"unexpected frame {meta.get('op')!r}")


def _is_importlib(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or filename == importlib.__file__


def _max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _forget_own_package() -> None:
    """The runtime's bootstrap (awslambda/process.py) put the directory holding crudstack first on
    sys.path, in place of the working directory (the task root). The function's zip must see neither
    that entry nor our modules: what runs is the zip and nothing of ours. Only that first entry goes:
    when crudstack is installed, the same directory is site-packages, which stays where site put it."""
    if sys.path and sys.path[0] in ("", os.getcwd(), _OWN_ROOT):
        del sys.path[0]
    for name in [name for name in sys.modules if name == "crudstack" or name.startswith("crudstack.")]:
        del sys.modules[name]


# Where an unprivileged worker falls back to when its own user id cannot be taken (a user namespace
# that maps few ids): the conventional unprivileged user (https://www.debian.org/doc/debian-policy/ch-opersys.html#uid-and-gid-classes).
NOBODY = 65534


def _readable_by_others(path: str) -> bool:
    """Can a user other than the owner (and in no group of it) list `path` and reach it?"""
    path = os.path.realpath(path)
    try:
        info = os.stat(path)
        if not (info.st_mode & 0o005 == 0o005 or (not os.path.isdir(path) and info.st_mode & 0o004)):
            return False
        while path != os.path.dirname(path):
            path = os.path.dirname(path)
            if not os.stat(path).st_mode & 0o001:
                return False
    except OSError:
        return False
    return True


def drop_privileges(task_root: str, uid: int, preloaded: list[str]) -> dict:
    """As root: give the task root to `uid` (or NOBODY) and become it. Returns what happened, for the ready frame."""
    if os.geteuid() != 0:
        return {"uid": os.geteuid(), "dropped": False, "why": "not started as root"}
    # The standard library, site-packages (boto3 & co., which a function imports whether preloaded or not)
    # and wherever the preloaded modules came from.
    needed = {os.path.dirname(os.__file__), *(path for path in site.getsitepackages() if os.path.isdir(path))}
    for name in preloaded:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            needed.add(os.path.dirname(os.path.dirname(location)) if location.endswith("__init__.py")
                       else os.path.dirname(location))
    unreadable = sorted(path for path in needed if not _readable_by_others(path))
    if unreadable:
        return {"uid": 0, "dropped": False,
                "why": f"{unreadable[0]} cannot be read by other users, so a function could not import from it"}
    failure = None
    for candidate in dict.fromkeys((uid, NOBODY)):
        try:
            os.chown(task_root, candidate, candidate)
            os.setgroups([])
            os.setgid(candidate)
            os.setuid(candidate)
            return {"uid": candidate, "dropped": True}
        except OSError as exc:
            failure = exc
    return {"uid": os.geteuid(), "dropped": False, "why": f"could not become another user: {failure}"}


def _preload(modules: list[str]) -> list[str]:
    """Import modules the handler will probably import (boto3) while the worker waits
    for a function, so a cold start does not pay for them. Returns the top-level names
    that were imported, so the runtime can refuse this worker to a zip that bundles its
    own copy of one of them."""
    before = set(sys.modules)
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    return sorted({name.split(".")[0] for name in set(sys.modules) - before})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task-root", required=True, help="empty directory to unzip the function into")
    parser.add_argument("--preload", default="", help="comma-separated modules to import before the handler")
    parser.add_argument("--all-packages", action="store_true",
                        help="let the handler import every installed package, not only those AWS's runtime has")
    parser.add_argument("--run-as", type=int, default=None, metavar="UID",
                        help="when started as root: the user id to run the function as (one per worker)")
    args = parser.parse_args(argv)

    sys.dont_write_bytecode = True  # the task directory is thrown away with the worker
    # Installed before the preload, so that what boto3 picks up (certifi, awscrt) is the
    # same in a spare worker as in a fresh one, and as on AWS.
    finder = None if args.all_packages else OnlyWhatLambdaHas()
    if finder:
        sys.meta_path.insert(0, finder)
    worker = Worker(args.task_root, finder)
    _forget_own_package()
    threading.Thread(target=worker.watch_parent, name="parent-watchdog", daemon=True).start()
    preloaded = _preload([name for name in args.preload.split(",") if name])
    user = drop_privileges(args.task_root, args.run_as, preloaded) if args.run_as is not None else None
    worker.channel.send({"op": "ready", "pid": os.getpid(), "preloaded": preloaded, "user": user})
    try:
        worker.serve()
    except BaseException as exc:  # SystemExit from a handler included: the sandbox ends
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        if not isinstance(exc, SystemExit):
            traceback.print_exc(file=sys.__stderr__)
        worker.exit(code)


if __name__ == "__main__":
    main()
