"""The HTTP/1.1 keep-alive WSGI server of the local AWS.

werkzeug's development server closes the connection after every response, and a Python server
that writes headers and body in separate sends waits for the client's delayed ACK (about 40 ms a
response; docs/performance.md). This one keeps HTTP/1.1 connections alive, sets TCP_NODELAY and writes each response with
a single send.

It reads a request whole before the app sees it, and never runs one it cannot trust (issue 21):
- a request cut off (EOF before the blank line after its header fields, or before its whole body) is
  dropped unanswered, never run;
- framing a proxy could read differently is refused with 400 and the connection closed (RFC 9112
  sections 5.1, 6.1 and 6.3): Content-Length with Transfer-Encoding, several different or non-numeric
  Content-Length values, whitespace before a field's colon, folded lines; a transfer coding other than
  chunked is a 501;
- a body over the app's limit (LocalAws.max_body: API Gateway's 10 MB for an invoke URL) is a 413,
  decided from Content-Length before any of it is read, or once a chunked body passes it; a request line
  over 64 KiB is a 414, header fields over 64 KiB a 431;
- at most MAX_CONNECTIONS connections (one thread each): a new one closes the one that has waited longest
  for (the rest of) a request, so clients that never finish theirs cannot keep a whole one out;
- a request must arrive in time: its head within REQUEST_HEAD_TIMEOUT_S of its first byte, its body at
  BODY_MIN_RATE, else 408 (a slow client must not keep a thread, or with 200 of them every client, out).
- request bodies being read or run take at most MAX_BODIES_IN_FLIGHT bytes together, else 503.
Every such answer is JSON {"message": ...} with Connection: close; none reaches the app, so none counts in
API Gateway's metrics or alarms. Why this server and not waitress or cheroot: BENCHMARKS.md (issue 21).
"""

from __future__ import annotations

import collections
import email.utils
import http.server
import io
import json
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import unquote_to_bytes, urlsplit

from crudstack.local.wsgi import WsgiApp

log = logging.getLogger("crudstack.local.server")

# A keep-alive connection that stays idle this long is closed (its thread with it).
IDLE_TIMEOUT_S = 120
# Once a request's first byte arrives, its request line and header fields must all arrive within this many
# seconds, and its body at no less than BODY_MIN_RATE bytes a second on average after a grace of as many
# seconds; else it is answered 408 and the connection closed. Without them a client sending a byte a minute
# (slowloris) keeps its thread forever, and 200 such clients keep every legitimate one out. The numbers are
# Apache's mod_reqtimeout defaults, header=20-40 and body=20,MinRate=500
# (https://httpd.apache.org/docs/2.4/mod/mod_reqtimeout.html), with a body rate that suits loopback.
REQUEST_HEAD_TIMEOUT_S = 20
BODY_MIN_RATE = 64 * 1024
# Open connections, hence threads (one each). When all are taken, a new connection closes the one idle
# longest: a client between requests, one that never sent any, or one whose request has not all arrived
# (a slow client cannot hold its place against a whole request); if every one is running a request, 503.
MAX_CONNECTIONS = 200

MAX_LINE = 64 * 1024  # the request line (a longer one is a 414) and each header field (431)
MAX_HEADER_BYTES = 64 * 1024  # all header fields together (431)
MAX_HEADERS = 100  # as http.client: more is a 431
MAX_CHUNK_LINE = 1024
# The most memory request bodies may take at once, over all connections: each is read whole before the app
# runs it, so without this 200 connections each sending the control plane's 70 MB (no credentials needed:
# the body is read before its signature is checked) would take 14 GB. A request that would pass it is a 503.
# Room for three of the largest at once, and any number of small ones; one such budget for the invoke URL's
# requests and one for the control plane's (a client flooding one cannot starve the other).
MAX_BODIES_IN_FLIGHT = 256 * 1024 * 1024
# What the app does not say otherwise (LocalAws.max_body): a bound on the memory one request can take.
DEFAULT_MAX_BODY = 10 * 1024 * 1024

# RFC 9110 section 5.6.2: a token; a field line is name ":" OWS value OWS (RFC 9112 section 5), no space
# before the colon, no obs-fold continuation line.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*\r?\n")
# RFC 9110 section 5.5: a field value is visible characters, spaces and tabs (and obs-text); NUL, CR and LF
# MUST be refused or replaced. Refused here with the other control characters, in values and request targets.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,18}")
# RFC 9112 section 7.1: chunk-size [ chunk-ext ] CRLF; sizes of more than 15 hex digits are nonsense here.
_CHUNK_SIZE = re.compile(r"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?\r?\n")


class _DeadlineReader(io.RawIOBase):
    """The connection's socket for the request's buffered reader: each recv waits at most until `deadline`
    (time.monotonic()), pushed back by `received / min_rate` when a rate is set; with no deadline, the idle
    timeout. `arm`, when set, starts a deadline that many seconds after the next bytes arrive."""

    def __init__(self, sock: socket.socket, idle: float):
        self._sock, self._idle = sock, idle
        self.deadline: float | None = None
        self.arm: float | None = None
        self.min_rate: float | None = None
        self.received = 0
        self._timed = False

    def readable(self) -> bool:
        return True

    def start(self, seconds: float | None, min_rate: float | None = None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.arm, self.min_rate, self.received = None, min_rate, 0

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if self.min_rate:
                left += self.received / self.min_rate
            if left <= 0:
                raise TimeoutError("the request did not arrive in time")
            self._sock.settimeout(left)
            self._timed = True
        elif self._timed:
            self._sock.settimeout(self._idle)
            self._timed = False
        read = self._sock.recv_into(buffer)
        self.received += read
        if read and self.arm is not None and self.deadline is None:
            self.start(self.arm)
        return read


class _Incomplete(Exception):
    """The client closed (or stalled) before the whole request arrived: it is dropped, never run."""


class _Refused(Exception):
    """A request the server answers itself with a 4xx/5xx JSON error, then closes the connection."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _too_large(limit: int, length: int | None = None) -> str:
    sent = f"The request body is {length} bytes" if length is not None else "The request body is larger"
    return f"{sent}; this endpoint accepts at most {limit} bytes. Send a smaller body."


def _origin_form(target: str) -> str:
    if "://" in target.split("?", 1)[0]:  # absolute-form request target
        split = urlsplit(target)
        return split.path + ("?" + split.query if split.query else "")
    return target


def _linger(sock: socket.socket, seconds: float = 1.0, most: int = 16 * 1024 * 1024) -> None:
    """Half-closes after an error answer and reads (and drops) what the client is still sending for a
    moment: closing with unread data would make the kernel send a reset, which can destroy the answer
    before the client reads it (RFC 9112 section 9.6, "tear-down")."""
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + seconds
    read = 0
    while read < most:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        read += len(chunk)


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

    server: "LocalAwsHTTPServer"

    def setup(self) -> None:
        super().setup()
        self.reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        self._reserved = 0  # bytes of this request's body counted in the server's budget (reserve_body)
        self._pool = 0  # which budget: the request's own limit (the invoke URL's, or the control plane's)
        try:
            self._handle_one_request()
        finally:
            self._release()

    def _release(self) -> None:
        if self._reserved:
            self.server.release_body(self._reserved, self._pool)
            self._reserved = 0

    def _reserve(self, size: int) -> None:
        """Counts `size` more bytes of body against the server's budget for all requests at once; 503 if
        it is spent (each request's own limit bounds one request, this bounds 200 of them together)."""
        if not self.server.reserve_body(size, self._pool):
            raise _Refused(503, f"The local AWS is receiving more than {self.server.max_bodies_in_flight} bytes of "
                                "request bodies at once; retry shortly.")
        self._reserved += size

    def _handle_one_request(self) -> None:
        self.command, self.request_version, self.requestline = None, "HTTP/1.1", ""  # type: ignore[assignment]
        self.close_connection = True
        try:
            framing = self._read_head()
            if framing is None:
                return
            self._pool = framing[1]
            if framing[0]:
                self._reserve(framing[0])  # before 100 Continue: a client told to wait sends nothing
            if self._expects_continue():
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.reader.start(self.server.request_head_timeout, self.server.body_min_rate)
            body = self._read_body(*framing)
        except _Incomplete:
            return  # dropped: a message cut off is never executed, and nobody is left to answer
        except TimeoutError:
            if self.reader.deadline is not None:  # too slow, not idle: say so (RFC 9110 section 15.5.9)
                self._refuse(_Refused(408, "The request did not arrive in time: send its header fields within "
                                           f"{self.server.request_head_timeout} s and its body without stalling."))
            return  # else idle too long between requests: closed
        except OSError:  # a reset: the same as cut off, the request never arrived whole
            return
        except _Refused as refusal:
            self._refuse(refusal)
            return
        if not self.server.connection_busy(self.connection):
            return  # evicted while its request arrived, to make room (LocalAwsHTTPServer.process_request)
        self.reader.start(None)
        environ = self._environ(body)
        self.close_connection = self._close_after
        self._run(environ)

    def _read_head(self) -> tuple[int | None, int] | None:
        """Reads the request line and header fields, and decides the body's framing: (its Content-Length, or
        None for chunked; the most it may be). None when the client closed an idle connection."""
        self.server.connection_idle(self.connection)
        self.reader.start(None)
        self.reader.arm = self.server.request_head_timeout  # from the first byte of the request line
        line = self.rfile.readline(MAX_LINE + 1)
        if self.reader.deadline is None:  # the line was already buffered (pipelined)
            self.reader.start(self.server.request_head_timeout)
        if not line:
            return None
        if len(line) > MAX_LINE:
            raise _Refused(414, f"The request line is longer than {MAX_LINE} bytes; send a shorter URL.")
        if not line.endswith(b"\n"):
            raise _Incomplete()
        self.raw_requestline = line
        text = line.decode("iso-8859-1").rstrip("\r\n")
        self.requestline = text
        words = text.split(" ")
        if len(words) != 3 or not words[1]:
            raise _Refused(400, "Malformed request line: expected 'METHOD target HTTP/1.1'.")
        method, path, version = words
        if not _TOKEN.fullmatch(method):
            raise _Refused(400, f"Malformed request method {method[:40]!r}.")
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _Refused(505, f"HTTP version {version[:20]!r} is not supported; use HTTP/1.1.")
        self.command, self.request_version = method, version
        if _CONTROL.search(path):
            # RFC 9112 section 3.2: a request-target is visible characters only (RFC 3986's, percent-encoded).
            raise _Refused(400, "The request target contains a control character (NUL, a bare CR or another); "
                                "percent-encode it.")
        if path.startswith("//"):  # as http.server: not a network path
            path = "/" + path.lstrip("/")
        self.path = path
        self.headers = headers = Headers(self._read_fields())  # type: ignore[assignment]

        # RFC 9110 section 7.6.1: Connection is a list of options, over any number of fields ("close, TE").
        options = {option.strip(" \t").lower() for name, value in headers.items() if name.lower() == "connection"
                   for option in value.split(",")}
        self._close_after = "close" in options or (version == "HTTP/1.0" and "keep-alive" not in options)
        return self._framing(headers)

    def _read_fields(self) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        size = 0
        while True:
            raw = self.rfile.readline(MAX_LINE + 1)
            if len(raw) > MAX_LINE:
                raise _Refused(431, f"A header field is longer than {MAX_LINE} bytes.")
            if not raw.endswith(b"\n"):
                # EOF before the blank line: the request is cut off (an If-Match that never arrived must
                # not turn a conditional DELETE into an unconditional one).
                raise _Incomplete()
            if raw in (b"\r\n", b"\n"):
                return fields
            size += len(raw)
            if size > MAX_HEADER_BYTES or len(fields) >= MAX_HEADERS:
                raise _Refused(431, f"The header fields are larger than {MAX_HEADER_BYTES} bytes or more than "
                                    f"{MAX_HEADERS}; send fewer or smaller ones.")
            field = _FIELD.fullmatch(raw.decode("iso-8859-1"))
            if field is None and _CONTROL.search(raw.rstrip(b"\r\n").decode("iso-8859-1")):
                raise _Refused(400, f"Header field {raw[:60]!r} contains a control character (NUL, a bare CR or "
                                    "another); remove it.")
            if field is None:
                # RFC 9112 section 5.1: whitespace between a field name and its colon MUST be refused with 400;
                # section 5.2: a folded line (obs-fold) may be refused with 400. Both are smuggling tools.
                raise _Refused(400, f"Malformed header field {raw[:60]!r}: expected 'Name: value' with no "
                                    "space before the colon and no folded lines.")
            fields.append((field.group(1), field.group(2)))

    def _framing(self, headers: Headers) -> tuple[int | None, int]:
        """RFC 9112 section 6: the body's length from Transfer-Encoding or Content-Length, refusing every
        ambiguity a proxy and this server could read differently (request smuggling)."""
        lengths = [value for name, value in headers.items() if name.lower() == "content-length"]
        codings = [value for name, value in headers.items() if name.lower() == "transfer-encoding"]
        limit = self.server.max_body(unquote_to_bytes(_origin_form(self.path).partition("?")[0]).decode("latin-1"))
        if codings:
            # Section 6.1: a message with both may be refused, and the connection MUST be closed either way;
            # Transfer-Encoding in HTTP/1.0 means faulty framing. Only "chunked" is understood (else 501).
            if lengths:
                raise _Refused(400, "The request has both Content-Length and Transfer-Encoding; send one.")
            if self.request_version != "HTTP/1.1":
                raise _Refused(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request.")
            if ",".join(codings).strip(" \t").lower() != "chunked":
                raise _Refused(501, f"Transfer-Encoding {', '.join(codings)[:40]!r} is not supported; use chunked.")
            return None, limit
        if not lengths:
            return 0, limit
        # Section 6.3: a Content-Length that is not one valid number (or several that differ) is unrecoverable.
        values = {value.strip(" \t") for joined in lengths for value in joined.split(",")}
        if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
            raise _Refused(400, "Content-Length must be one decimal number (several different values were sent, "
                                "or one that is not a number).")
        length = int(next(iter(values)))
        if length > limit:
            # Refused from the header, before a byte of the body is read (nor is it ever buffered).
            raise _Refused(413, _too_large(limit, length))
        return length, limit

    def _expects_continue(self) -> bool:
        return (self.request_version == "HTTP/1.1"
                and (self.headers.get("Expect") or "").lower() == "100-continue")

    def _read_body(self, length: int | None, limit: int) -> bytes:
        if length is None:
            return self._read_chunked(limit)
        if length == 0:
            return b""
        body = self.rfile.read(length)
        if len(body) != length:
            raise _Incomplete()  # the client closed before the whole body arrived
        return body

    def _read_chunked(self, limit: int) -> bytes:
        # One buffer, not a list of chunks: 1-byte chunks would cost about 40 bytes of memory per body byte.
        body = bytearray()
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if not line.endswith(b"\n"):
                if len(line) > MAX_CHUNK_LINE:
                    raise _Refused(400, "Malformed chunk size line.")
                raise _Incomplete()
            size_match = _CHUNK_SIZE.fullmatch(line.decode("iso-8859-1"))
            if size_match is None:
                raise _Refused(400, "Malformed chunk size: expected hexadecimal digits.")
            size = int(size_match.group(1), 16)
            if size == 0:
                self._read_trailers()
                return bytes(body)
            if len(body) + size > limit:
                raise _Refused(413, _too_large(limit))  # streamed: never more than the limit in memory
            self._reserve(size)
            data = self.rfile.read(size)
            end = self.rfile.readline(3)
            if len(data) != size or (len(end) < 3 and not end.endswith(b"\n")):
                raise _Incomplete()  # readline(3) stops short of 3 bytes only at a line's end or at EOF
            if end not in (b"\r\n", b"\n"):
                raise _Refused(400, "Malformed chunk: its data is longer than its size.")
            body += data

    def _read_trailers(self) -> None:
        size = 0
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n"):
                if len(line) > MAX_LINE:
                    raise _Refused(431, f"A trailer field is longer than {MAX_LINE} bytes.")
                raise _Incomplete()
            if line in (b"\r\n", b"\n"):
                return
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise _Refused(431, f"The trailer fields are larger than {MAX_HEADER_BYTES} bytes.")

    def _refuse(self, refusal: "_Refused") -> None:
        """Answers a request the server will not run with a JSON error, then closes the connection: its
        framing can no longer be trusted (or its body is left unread)."""
        self.close_connection = True
        body = json.dumps({"message": refusal.message}).encode()
        try:
            self._send(f"{refusal.status} {HTTPStatus(refusal.status).phrase}",
                       [("Content-Type", "application/json")], body)
            self.wfile.flush()
            _linger(self.connection)
        except OSError:
            pass
        self.log_message('"%s" %s refused: %s', self.requestline[:200], refusal.status, refusal.message)

    def _environ(self, body: bytes) -> dict[str, Any]:
        raw_path, _, query = _origin_form(self.path).partition("?")
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
            elif key == "TRANSFER_ENCODING":
                continue  # the body below is whole: the app sees a Content-Length
            elif "_" not in name:  # as werkzeug: drop names that would collide with dashes
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        if body or "CONTENT_LENGTH" in environ:
            environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

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
        self._release()  # the request's body is done with: free before the answer, which may wait on the client
        try:
            self._send(state["status"], state["headers"], body)
        except OSError as exc:  # the client went away (reset, broken pipe): nobody to answer, no server error
            self.close_connection = True
            self.log_message('"%s" %s: the client left before its answer (%s)', self.requestline[:200],
                             state["status"], exc)

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
    max_connections = MAX_CONNECTIONS
    max_bodies_in_flight = MAX_BODIES_IN_FLIGHT
    request_head_timeout = REQUEST_HEAD_TIMEOUT_S
    body_min_rate = BODY_MIN_RATE

    def __init__(self, host: str, port: int, app: WsgiApp | None = None):
        super().__init__((host, port), KeepAliveWSGIRequestHandler)
        self.app = app
        self._connections_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        # Connections waiting for (the rest of) a request, the longest-waiting first.
        self._idle: collections.OrderedDict[socket.socket, None] = collections.OrderedDict()
        # Bytes of request bodies being read or run (KeepAliveWSGIRequestHandler._reserve), by body limit: the
        # invoke URL's requests and the control plane's have a budget each, so a flood of one leaves the other be.
        self._bodies: collections.Counter[int] = collections.Counter()

    def max_body(self, path: str) -> int:
        decide = getattr(self.app, "max_body", None)
        return decide(path) if decide is not None else DEFAULT_MAX_BODY

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN: a DNS lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            full = len(self._open) >= self.max_connections
            if full and self._idle:
                oldest, _ = self._idle.popitem(last=False)
                self._open.discard(oldest)
                try:
                    oldest.shutdown(socket.SHUT_RDWR)  # its thread reads EOF and ends
                except OSError:
                    pass
                full = False
            if not full:
                self._open.add(request)
        if full:
            self._refuse_connection(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread could be started
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def reserve_body(self, size: int, pool: int) -> bool:
        with self._connections_lock:
            if self._bodies[pool] + size > self.max_bodies_in_flight:
                return False
            self._bodies[pool] += size
            return True

    def release_body(self, size: int, pool: int) -> None:
        with self._connections_lock:
            self._bodies[pool] -= size

    def connection_idle(self, request: socket.socket) -> None:
        with self._connections_lock:
            if request in self._open:
                self._idle[request] = None

    def connection_busy(self, request: socket.socket) -> bool:
        """Marks a connection whose request arrived whole busy; False if it was closed while idle."""
        with self._connections_lock:
            self._idle.pop(request, None)
            return request in self._open

    def _forget(self, request: socket.socket) -> None:
        with self._connections_lock:
            self._open.discard(request)
            self._idle.pop(request, None)

    def _refuse_connection(self, request: socket.socket) -> None:
        log.warning("%d connections are open, all running a request: a new one is answered 503", len(self._open))
        body = json.dumps({"message": f"The local AWS has {self.max_connections} connections open, all busy; "
                                      "retry shortly."}).encode()
        try:
            request.settimeout(1.0)
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            _linger(request, seconds=0.2, most=MAX_HEADER_BYTES)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("connection from %s failed", client_address)
