#!/usr/bin/env python3
"""Benchmark and probe: the local AWS's HTTP server next to waitress and cheroot (issue 21).

Each server runs in this process on 127.0.0.1 with the same small WSGI app (it counts the requests it
is given and answers 12 bytes of JSON), set to the same limits where it has a setting for them (header
fields 64 KiB, body 10 MiB, 200 connections, 8 worker threads where it has a pool). Then:

  - the issue's hostile requests, over raw sockets: what each server answers and whether the app ran;
  - the memory the app can see: whether the header names as sent (with repeats) reach it, which the
    gateway's event needs (multiValueHeaders);
  - 1 client: p50 of GET on a keep-alive connection; 8 clients: requests/s (http.client, TCP_NODELAY).

    python bench/front_door.py [--requests 2000] [--json]

waitress and cheroot are not dependencies of the project: install them to run this
(`pip install waitress cheroot`); a server that is missing is skipped.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAX_HEADER = 64 * 1024
MAX_BODY = 10 * 1024 * 1024
CONNECTIONS = 200
THREADS = 8


class CountingApp:
    def __init__(self):
        self.runs = 0
        self.raw_headers_seen = False
        self.lock = threading.Lock()

    def max_body(self, path: str) -> int:  # the local AWS's server asks its app
        return MAX_BODY

    def __call__(self, environ, start_response):
        environ["wsgi.input"].read()
        with self.lock:
            self.runs += 1
            self.raw_headers_seen |= any(name == "X-Twice" for name, _ in environ.get("localaws.headers", ()))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "12")])
        return [b'{"ok": true}']


# ------------------------------------------------------------------------------------------- servers

def start_ours(app: CountingApp) -> tuple[int, Callable[[], None]]:
    from crudstack.local.server.httpserver import LocalAwsHTTPServer

    httpd = LocalAwsHTTPServer("127.0.0.1", 0, app)
    httpd.max_connections = CONNECTIONS
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
    return httpd.server_address[1], stop


def start_waitress(app: CountingApp) -> tuple[int, Callable[[], None]]:
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=THREADS, connection_limit=CONNECTIONS,
                           max_request_header_size=MAX_HEADER, max_request_body_size=MAX_BODY, channel_timeout=120,
                           clear_untrusted_proxy_headers=True)
    threading.Thread(target=server.run, daemon=True).start()
    return server.effective_port, server.close


def start_cheroot(app: CountingApp) -> tuple[int, Callable[[], None]]:
    from cheroot import wsgi

    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=THREADS, max=THREADS, request_queue_size=1024)
    server.max_request_header_size = MAX_HEADER
    server.max_request_body_size = MAX_BODY
    server.prepare()
    threading.Thread(target=server.serve, daemon=True).start()
    return server.bind_addr[1], server.stop


SERVERS = {"ours (httpserver.py)": start_ours, "waitress": start_waitress, "cheroot": start_cheroot}


# -------------------------------------------------------------------------------------------- probes

def exchange(port: int, data: bytes, *, close_write: bool = True, timeout: float = 5) -> tuple[bytes, bool]:
    """(what the server sent, whether it closed the connection) after sending `data`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        received, closed = b"", False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
            if not close_write and b"\r\n\r\n" in received:
                sock.settimeout(0.5)
        return received, closed


def statuses(raw: bytes) -> list[str]:
    return [line.split(b" ")[1].decode() for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def content_type(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"content-type:"):
            return line.split(b":", 1)[1].strip().decode()
    return "-"


def probe(port: int, app: CountingApp, name: str, data: bytes, **kwargs: Any) -> dict:
    before = app.runs
    raw, closed = exchange(port, data, **kwargs)
    time.sleep(0.05)
    return {"probe": name, "answers": statuses(raw) or ["(none)"], "app_runs": app.runs - before,
            "content_type": content_type(raw) if raw else "-", "closed": closed}


PATH = "/restapis/a/prod/_user_request_/items"
SMUGGLED = b"GET /moto-api/data.json HTTP/1.1\r\nHost: h\r\n\r\n"


def probes(port: int, app: CountingApp) -> list[dict]:
    found = [
        probe(port, app, "1. cut off before the blank line", f"DELETE {PATH}/1 HTTP/1.1\r\nHost: h\r\n".encode()),
        probe(port, app, "1. body shorter than Content-Length",
              f"POST {PATH} HTTP/1.1\r\nHost: h\r\nContent-Length: 400\r\n\r\n".encode() + b"x" * 20),
        probe(port, app, "2. Content-Length 500 MB (64 KiB sent)",
              f"POST {PATH} HTTP/1.1\r\nHost: h\r\nContent-Length: {500 << 20}\r\n\r\n".encode() + b"x" * 65536,
              close_write=False),
        probe(port, app, "3. Content-Length + chunked, then a 2nd request",
              f"POST {PATH} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
              "0\r\n\r\n".encode() + SMUGGLED),
        probe(port, app, "3. two different Content-Lengths",
              f"POST {PATH} HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 50\r\n\r\n{{}}".encode() + SMUGGLED),
        probe(port, app, "3. 'Transfer-Encoding : chunked'",
              f"POST {PATH} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n".encode() + SMUGGLED),
        probe(port, app, "4. 100 KiB URL", f"GET /{'a' * 102400} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), close_write=False),
    ]
    # A chunked body past the limit, sent in 1 MiB chunks until the server stops reading.
    before = app.runs
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(24):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except OSError:
            pass
    found.append({"probe": "2. chunked body of 24 MiB", "answers": statuses(raw) or ["(none)"],
                  "app_runs": app.runs - before, "content_type": content_type(raw) if raw else "-", "closed": True})
    # Header names as sent, with repeats, reach the app?
    exchange(port, f"GET {PATH} HTTP/1.1\r\nHost: h\r\nX-Twice: 1\r\nX-Twice: 2\r\nConnection: close\r\n\r\n".encode())
    found.append({"probe": "header names as sent reach the app", "answers": [str(app.raw_headers_seen)],
                  "app_runs": 1, "content_type": "-", "closed": True})
    # 300 idle connections: threads, and whether a new client is still served.
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
    time.sleep(1.0)
    threads = threading.active_count() - threads_before
    raw, _ = exchange(port, f"GET {PATH} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode(), timeout=3)
    for sock in idle:
        sock.close()
    found.append({"probe": "5. 300 idle sockets: threads added; a new client", "answers": statuses(raw) or ["(none)"],
                  "app_runs": threads, "content_type": "-", "closed": True})
    return found


# ------------------------------------------------------------------------------------------- latency

def latency(port: int, requests: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for i in range(requests + 50):
        started = time.perf_counter()
        conn.request("GET", PATH)
        conn.getresponse().read()
        if i >= 50:
            samples.append((time.perf_counter() - started) * 1000)
    conn.close()
    return {"p50_ms": round(statistics.median(samples), 3), "p99_ms": round(sorted(samples)[int(len(samples) * 0.99)], 3)}


def throughput(port: int, clients: int = 8, seconds: float = 3.0) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.monotonic() < stop:
            conn.request("GET", PATH)
            conn.getresponse().read()
            done[index] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(done) / (time.monotonic() - started), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {}
    for name, start in SERVERS.items():
        app = CountingApp()
        try:
            port, stop = start(app)
        except ImportError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        try:
            time.sleep(0.2)
            report[name] = {"probes": probes(port, app), "latency": latency(port, args.requests),
                            "req_per_s_8_clients": throughput(port)}
        finally:
            stop()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, result in report.items():
        print(f"\n{name}: GET p50 {result['latency']['p50_ms']} ms, p99 {result['latency']['p99_ms']} ms, "
              f"8 clients {result['req_per_s_8_clients']} req/s")
        for row in result["probes"]:
            print(f"  {row['probe']:<50} {'/'.join(row['answers']):<10} app runs {row['app_runs']:<4} "
                  f"{row['content_type']:<28} {'closed' if row['closed'] else 'kept open'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
