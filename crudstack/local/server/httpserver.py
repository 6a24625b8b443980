"""The HTTP/1.1 keep-alive WSGI server of the local AWS.

werkzeug's development server closes the connection after every response, and a Python server
that writes headers and body in separate sends waits for the client's delayed ACK (about 40 ms a
response; docs/performance.md). This one keeps HTTP/1.1 connections alive, sets TCP_NODELAY
and writes each response with a single send.
"""

from __future__ import annotations

import email.utils
import http.server
import io
import logging
import socketserver
import sys
import time
from typing import Any, Callable
from urllib.parse import unquote_to_bytes, urlsplit

from crudstack.local.wsgi import WsgiApp

log = logging.getLogger("crudstack.local.server")

# A keep-alive connection that stays idle this long is closed (its thread with it).
IDLE_TIMEOUT_S = 120


MAX_HEADERS = 100  # as http.client: more is a 431


class _BodyTooLarge(Exception):
    pass


class Headers:
    """A request's header fields in order, names as sent: what email.message.Message gives
    http.server, without the e-mail parser (a fifth of the server's CPU per request).
    `get` is case-insensitive and returns the first field of a name, as Message.get does."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]):
        self._fields = fields

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def get(self, name: str, default: Any = None) -> Any:
        name = name.lower()
        for key, value in self._fields:
            if key.lower() == name:
                return value
        return default

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self):
        return (key for key, _ in self._fields)


def _http_date(now: float | None = None, _cache: list = [0, ""]) -> str:  # noqa: B006 - one cached second
    second = int(time.time() if now is None else now)
    if _cache[0] != second:
        _cache[0], _cache[1] = second, email.utils.formatdate(second, usegmt=True)
    return _cache[1]


class KeepAliveWSGIRequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY
    timeout = IDLE_TIMEOUT_S
    server_version = "crudstack-localaws"
    sys_version = ""
    max_body = 512 * 1024 * 1024

    server: "LocalAwsHTTPServer"

    def parse_request(self) -> bool:
        """http.server's parse_request for the request line of HTTP/1.0 and 1.1 and its header fields,
        read without the e-mail parser; anything else (HTTP/0.9, 2.0, a malformed line) goes to
        http.server, which answers it as before."""
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = line.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return super().parse_request()
        self.requestline = line
        self.command, path, self.request_version = words
        if path.startswith("//"):  # as http.server: not a network path
            path = "/" + path.lstrip("/")
        self.path = path
        self.close_connection = self.request_version != "HTTP/1.1"
        fields: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(65537)
            if len(raw) > 65536:
                self.send_error(431, "Line too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            text = raw.decode("iso-8859-1")
            if text[0] in " \t" and fields:  # a folded line continues the field before it
                name, value = fields[-1]
                fields[-1] = (name, value + "\r\n" + text.rstrip("\r\n"))
                continue
            if len(fields) >= MAX_HEADERS:
                self.send_error(431, "Too many headers")
                return False
            name, sep, value = text.partition(":")
            if sep:
                fields.append((name, value.lstrip(" \t").rstrip("\r\n")))
        self.headers = headers = Headers(fields)  # type: ignore[assignment]
        connection = (headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if (headers.get("Expect") or "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

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
        lines.append(f"Date: {_http_date()}")
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
    # The listen backlog: 100 clients connecting at once, plus the connections of the Lambda workers
    # they keep busy, must all wait for accept() rather than be refused (Linux caps it at somaxconn).
    request_queue_size = 1024

    def __init__(self, host: str, port: int, app: WsgiApp | None = None):
        super().__init__((host, port), KeepAliveWSGIRequestHandler)
        self.app = app

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN: a DNS lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("connection from %s failed", client_address)
