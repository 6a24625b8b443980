"""The local AWS's HTTP front door under a hostile client (issue 21, findings 1 to 5), over raw sockets.

The server (crudstack/local/server/httpserver.py) runs in this process on 127.0.0.1 with an app that
records every request it is given, so each test can tell "answered" from "run". It is stopped by the
fixture. What the whole local AWS does with the same requests is in test_server.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from crudstack.local.server.dispatch import LocalAws
from crudstack.local.server.httpserver import LocalAwsHTTPServer

INVOKE = "/restapis/abc123/prod/_user_request_/items"
INVOKE_URL_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload quota (server/dispatch.py)


class RecordingApp:
    def max_body(self, path: str) -> int:
        return LocalAws.max_body(path)  # the local AWS's own limits

    def __init__(self):
        self.calls: list[tuple[str, str, bytes]] = []
        self.release = threading.Event()  # a request to .../hold runs until this is set

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read()
        self.calls.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], body))
        if environ["PATH_INFO"].endswith("/hold"):
            self.release.wait(10)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']


@pytest.fixture
def front_door():
    app = RecordingApp()
    httpd = LocalAwsHTTPServer("127.0.0.1", 0, app)
    serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    try:
        yield httpd, app
    finally:
        httpd.shutdown()
        httpd.server_close()


def connect(httpd) -> socket.socket:
    sock = socket.create_connection(httpd.server_address[:2], timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (b"" if it closes without a word)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def send_then_close(httpd, data: bytes) -> bytes:
    """Sends `data`, closes the sending half (as a client whose connection dropped), returns the answer."""
    with connect(httpd) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 responses in `raw`, in order (each with a Content-Length)."""
    found = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        found.append((int(lines[0].split(" ")[1]), headers, raw[:length]))
        raw = raw[length:]
    return found


def one_refusal(raw: bytes, status: int) -> str:
    [(got, headers, body)] = responses(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    return json.loads(body)["message"]


# 1. A request cut off is never run ----------------------------------------------------------------------

def dropped_unrun(front_door, *cut_off: bytes) -> None:
    """Each request in `cut_off`, its connection closed after it, gets no answer and is not run."""
    httpd, app = front_door
    for request in cut_off:
        assert send_then_close(httpd, request) == b""
    assert app.calls == []


def test_a_request_cut_off_before_the_end_of_its_header_fields_is_dropped_unrun(front_door):
    # The If-Match line never arrives: run anyway, this would be an unconditional DELETE.
    dropped_unrun(front_door, f"DELETE {INVOKE}/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Ma".encode(),
                  f"DELETE {INVOKE}/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())


def test_a_request_whose_body_is_shorter_than_its_content_length_is_dropped_unrun(front_door):
    dropped_unrun(front_door, f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              f"Content-Length: 400\r\n\r\n".encode() + b'{"name": "Widget!!!"}')


def test_a_chunked_body_cut_off_before_its_last_chunk_is_dropped_unrun(front_door):
    dropped_unrun(front_door, f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "10\r\n{\"name\": \"W\"}\r\n".encode())


def test_a_whole_request_on_the_same_kind_of_connection_is_run(front_door):
    httpd, app = front_door
    body = b'{"name": "Widget"}'
    answer = send_then_close(httpd, f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                                    "Connection: close\r\n\r\n".encode() + body)
    assert [status for status, _, _ in responses(answer)] == [200]
    assert app.calls == [("POST", INVOKE, body)]


# 2. Big bodies: 413 from Content-Length, chunked bodies counted as they stream -------------------------

def test_a_body_declared_over_the_limit_is_refused_413_before_it_is_sent(front_door):
    httpd, app = front_door
    with connect(httpd) as sock:
        sock.settimeout(5)  # the answer must not wait for the 500 MB
        sock.sendall(f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {500 * 1024 * 1024}\r\n\r\n".encode() + b"x" * 65536)
        message = one_refusal(read_all(sock), 413)
    assert f"at most {INVOKE_URL_MAX_BODY} bytes" in message
    assert app.calls == []


def test_an_invoke_url_takes_api_gateways_10_mb_and_no_more(front_door):
    httpd, app = front_door
    with connect(httpd) as sock:
        sock.sendall(f"PUT {INVOKE}/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Length: {INVOKE_URL_MAX_BODY + 1}\r\n\r\n".encode())
        one_refusal(read_all(sock), 413)
    body = b"x" * INVOKE_URL_MAX_BODY
    answer = send_then_close(httpd, f"PUT {INVOKE}/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert [status for status, _, _ in responses(answer)] == [200]
    assert [(method, len(received)) for method, _, received in app.calls] == [("PUT", INVOKE_URL_MAX_BODY)]


def test_a_client_expecting_100_continue_gets_413_instead_and_never_sends_the_body(front_door):
    httpd, app = front_door
    with connect(httpd) as sock:
        sock.sendall(f"PUT {INVOKE}/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {INVOKE_URL_MAX_BODY + 1}\r\n\r\n".encode())
        answer = read_all(sock)
    assert not answer.startswith(b"HTTP/1.1 100")
    one_refusal(answer, 413)
    assert app.calls == []


def test_a_chunked_body_is_refused_413_once_it_passes_the_limit(front_door):
    httpd, app = front_door
    chunk = b"x" * (1024 * 1024)
    with connect(httpd) as sock:
        sock.sendall(f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(64):  # 64 MB unless the server stops reading
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server answered and closed
        message = one_refusal(read_all(sock), 413)
    assert "larger" in message
    assert app.calls == []


# 3. Request smuggling: framing two readers could disagree on is refused and the connection closed -------

SMUGGLED = b"GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def refused_unrun(front_door, fields: str, rest: bytes, status: int = 400) -> str:
    """Sends a POST with these header fields and `rest` after them; asserts it is refused with `status`
    and nothing (neither it nor a request hidden after it) ran. The refusal's message."""
    httpd, app = front_door
    answer = send_then_close(httpd, f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}\r\n".encode() + rest)
    message = one_refusal(answer, status)
    assert app.calls == []
    return message


def test_content_length_with_transfer_encoding_is_refused_and_the_hidden_request_never_runs(front_door):
    message = refused_unrun(front_door, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED)
    assert "both Content-Length and Transfer-Encoding" in message


def test_two_different_content_lengths_are_refused(front_door):
    assert "Content-Length" in refused_unrun(front_door, "Content-Length: 2\r\nContent-Length: 54\r\n", b"{}" + SMUGGLED)


@pytest.mark.parametrize("value", ["+2", "0x2", "2 2", "-2", "2_0"])
def test_a_content_length_that_is_not_a_plain_number_is_refused(front_door, value):
    refused_unrun(front_door, f"Content-Length: {value}\r\n", b"{}")


@pytest.mark.parametrize("field", ["Transfer-Encoding : chunked", "Transfer-Encoding\t: chunked",
                                   "X-Folded: a\r\n chunked"])
def test_whitespace_before_a_colon_or_a_folded_line_is_refused(front_door, field):
    assert "Malformed header field" in refused_unrun(front_door, f"{field}\r\n", b"0\r\n\r\n" + SMUGGLED)


def test_a_transfer_coding_other_than_chunked_is_501(front_door):
    refused_unrun(front_door, "Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n", status=501)


# 4. A very long URL is a 414 --------------------------------------------------------------------------

def test_a_100_kib_url_is_answered_414(front_door):
    httpd, app = front_door
    with connect(httpd) as sock:
        sock.settimeout(5)
        sock.sendall(f"GET /{'a' * 100 * 1024} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert "request line is longer" in one_refusal(read_all(sock), 414)
    assert app.calls == []


def test_header_fields_over_64_kib_are_answered_431(front_door):
    httpd, app = front_door
    fields = "".join(f"X-Pad-{i}: {'p' * 1000}\r\n" for i in range(70))
    with connect(httpd) as sock:
        sock.sendall(f"GET {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}\r\n".encode())
        one_refusal(read_all(sock), 431)
    assert app.calls == []


# 5. Connections, hence threads, are capped --------------------------------------------------------------

def assert_a_new_client_is_served(httpd) -> None:
    answer = send_then_close(httpd, f"GET {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    assert [status for status, _, _ in responses(answer)] == [200]


def test_300_idle_connections_take_at_most_the_cap_of_threads_and_a_new_client_is_served(front_door):
    httpd, app = front_door
    before = threading.active_count()
    idle = []
    try:
        for _ in range(300):
            idle.append(connect(httpd))
        time.sleep(1.0)  # every connection accepted
        assert threading.active_count() - before <= 200
        assert_a_new_client_is_served(httpd)
    finally:
        for sock in idle:
            sock.close()
    assert app.calls == [("GET", INVOKE, b"")]


def test_when_every_connection_is_busy_a_new_one_is_answered_503_json(front_door):
    httpd, app = front_door
    httpd.max_connections = 2
    busy = [connect(httpd) for _ in range(2)]
    try:
        for sock in busy:  # whole requests the app is still running: busy, not idle
            sock.sendall(f"GET {INVOKE}/hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert wait_for(lambda: len(app.calls) == 2)
        with connect(httpd) as sock:
            assert "connections open" in one_refusal(read_all(sock), 503)
    finally:
        app.release.set()
        for sock in busy:
            sock.close()
    assert app.calls == [("GET", f"{INVOKE}/hold", b"")] * 2


def test_clients_that_never_finish_their_header_fields_give_way_to_a_whole_request(front_door):
    httpd, app = front_door
    httpd.max_connections = 2
    slow = [connect(httpd) for _ in range(2)]
    try:
        for sock in slow:  # a request line, then header fields that never end
            sock.sendall(f"GET {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
        time.sleep(0.5)
        # Well within the head timeout (20 s): the new client takes the place of the oldest slow one.
        assert_a_new_client_is_served(httpd)
    finally:
        for sock in slow:
            sock.close()
    assert app.calls == [("GET", INVOKE, b"")]


def wait_for(predicate, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


# Slow clients (slowloris): a request must arrive in time, else 408 and its thread is freed ---------------

def trickle(sock: socket.socket, data: bytes, seconds: float) -> bytes:
    """Sends `data` a byte every 0.1 s for at most `seconds` (or until the server stops reading); then
    everything the server answered."""
    deadline = time.monotonic() + seconds
    try:
        for byte in data:
            if time.monotonic() > deadline:
                break
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
    except OSError:
        pass  # the server answered and closed
    return read_all(sock)


def test_header_fields_trickled_a_byte_at_a_time_are_answered_408_once_the_head_timeout_passes(front_door):
    httpd, app = front_door
    httpd.request_head_timeout = 1
    with connect(httpd) as sock:
        sock.sendall(f"GET {INVOKE} HTTP/1.1\r\n".encode())
        started = time.monotonic()
        answer = trickle(sock, b"X-Slow: " + b"s" * 200 + b"\r\n\r\n", seconds=10)
    assert time.monotonic() - started < 8  # 10 s of trickling were not waited for
    assert "did not arrive in time" in one_refusal(answer, 408)
    assert app.calls == []


def test_a_body_trickled_slower_than_the_minimum_rate_is_answered_408(front_door):
    httpd, app = front_door
    httpd.request_head_timeout, httpd.body_min_rate = 1, 1000
    with connect(httpd) as sock:
        sock.sendall(f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n".encode())
        answer = trickle(sock, b"x" * 100, seconds=10)  # 10 bytes a second: 1 s of grace + 1 ms a byte
    one_refusal(answer, 408)
    assert app.calls == []


def test_a_request_line_trickled_from_its_first_byte_counts_against_the_head_timeout(front_door):
    httpd, app = front_door
    httpd.request_head_timeout = 1
    with connect(httpd) as sock:
        answer = trickle(sock, f"GET {INVOKE}{'/x' * 100} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), seconds=10)
    one_refusal(answer, 408)
    assert app.calls == []


# Control characters, Connection options, chunk overruns, many small chunks --------------------------------

@pytest.mark.parametrize("value", ["a\x00b", "a\x01b", "a\x1bb", "a\x7fb"])
def test_a_control_character_in_a_header_value_is_refused(front_door, value):
    # RFC 9110 section 5.5: NUL, CR and LF in a field value MUST be refused or replaced.
    assert "control character" in refused_unrun(front_door, f"X-Note: {value}\r\nContent-Length: 0\r\n", b"")


def test_obs_text_and_tabs_in_a_header_value_are_accepted(front_door):
    httpd, app = front_door
    answer = send_then_close(httpd, f"GET {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Note: caf\xe9\tau lait\r\n"
                                    "Connection: close\r\n\r\n".encode("latin-1"))
    assert [status for status, _, _ in responses(answer)] == [200]


@pytest.mark.parametrize("target", [f"{INVOKE}/a\x00b", f"{INVOKE}/a\x01b", f"{INVOKE}?q=\x7f"])
def test_a_control_character_in_the_request_target_is_refused(front_door, target):
    httpd, app = front_door
    answer = send_then_close(httpd, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert "control character" in one_refusal(answer, 400)
    assert app.calls == []


@pytest.mark.parametrize("fields", ["Connection: close, TE\r\nTE: trailers\r\n",
                                    "Connection: TE\r\nConnection: close\r\nTE: trailers\r\n",
                                    "Connection: Keep-Alive ,Close\r\n"])
def test_connection_close_among_other_options_closes_the_connection(front_door, fields):
    httpd, app = front_door
    with connect(httpd) as sock:
        sock.settimeout(5)  # a kept-alive connection would wait the idle timeout: the read fails
        sock.sendall(f"GET {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}\r\n".encode())
        [(status, headers, _)] = responses(read_all(sock))
    assert (status, headers["connection"]) == (200, "close")


def test_chunk_data_longer_than_its_size_is_answered_400(front_door):
    message = refused_unrun(front_door, "Transfer-Encoding: chunked\r\n", b"2\r\nhello\r\n0\r\n\r\n")
    assert "longer than its size" in message


def test_a_body_of_tiny_chunks_takes_memory_in_proportion_to_its_size(front_door):
    import tracemalloc

    httpd, app = front_door
    size = 256 * 1024
    request = (f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               .encode() + b"2\r\nab\r\n" * (size // 2) + b"0\r\n\r\n")
    tracemalloc.start()
    try:
        answer = send_then_close(httpd, request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [status for status, _, _ in responses(answer)] == [200]
    assert [len(body) for _, _, body in app.calls] == [size]
    # The body, its copy for the app, the app's own read, buffers: a few times its size, never ~40 times.
    assert peak < 6 * size, peak


# All bodies together take bounded memory ---------------------------------------------------------------

@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bodies_over_the_servers_budget_for_all_requests_at_once_are_answered_503(front_door, framing):
    # Each request is within its own limit; together they are not (200 x 70 MB would be 14 GB).
    httpd, app = front_door
    httpd.max_bodies_in_flight = 1024 * 1024
    body = b"x" * (600 * 1024)
    first = connect(httpd)
    try:
        first.sendall(f"POST {INVOKE}/hold HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        assert wait_for(lambda: len(app.calls) == 1)  # its body is held while the app runs it
        if framing == "chunked":
            second = (f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                      + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            second = f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        assert "request bodies at once" in one_refusal(send_then_close(httpd, second), 503)
        app.release.set()
        assert [status for status, _, _ in responses(read_all_of(first))] == [200]
    finally:
        app.release.set()
        first.close()
    # Once the first is answered its bytes are free again.
    answer = send_then_close(httpd, f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert [status for status, _, _ in responses(answer)] == [200]
    assert [len(received) for _, _, received in app.calls] == [len(body)] * 2


def read_all_of(sock: socket.socket) -> bytes:
    """One response on a kept-alive connection: read until its head and Content-Length bytes are in."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        received += chunk
        head, end, body = received.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        if not chunk or (end and len(body) >= length):
            return received


def test_a_client_gone_before_its_answer_is_no_server_error_and_the_server_goes_on(front_door, caplog):
    import logging
    import struct

    httpd, app = front_door
    caplog.set_level(logging.DEBUG, logger="crudstack.local.server")
    for _ in range(3):
        app.release.clear()
        gone = connect(httpd)
        gone.sendall(f"GET {INVOKE}/hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert wait_for(lambda: app.calls and app.calls[-1][1].endswith("/hold"))
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()  # a reset: the answer's send fails
        time.sleep(0.1)
        app.calls.clear()
        app.release.set()
        time.sleep(0.2)
    assert_a_new_client_is_served(httpd)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert any("the client left before its answer" in record.getMessage() for record in caplog.records)


def test_bodies_flooding_the_control_plane_leave_the_invoke_urls_budget_be(front_door):
    httpd, app = front_door
    httpd.max_bodies_in_flight = 1024 * 1024
    flood = connect(httpd)
    try:  # declared, never sent: the control plane's budget is spent while it waits
        flood.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        time.sleep(0.3)
        answer = send_then_close(httpd, f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                        "Content-Length: 600000\r\n\r\n".encode() + b"x" * 600000)
        assert [status for status, _, _ in responses(answer)] == [200]
        answer = send_then_close(httpd, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 600000\r\n\r\n"
                                 + b"x" * 600000)
        assert "request bodies at once" in one_refusal(answer, 503)
    finally:
        flood.close()
