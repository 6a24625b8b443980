#!/usr/bin/env python3
"""Benchmark: provisioning far from the region, where every AWS call takes 100 ms (issue 16).

A user far from their region waits a round trip on every call, so a run costs about
(calls in sequence) x (round trip). FarRegion stands in for that region on loopback: a threaded
HTTP proxy on 127.0.0.1 that waits --latency-ms before forwarding each request to a moto server
(`python -m moto.server` on a free loopback port) and hands the answer back unchanged. Calls sent
in parallel wait in parallel, as they would on a real network.

Phases, each a run of the real steps in-process against the proxy (Aws(endpoint_url=proxy), as
bench/provision.py runs them), with its own stack name and a private copy of lambdas/:

    fresh provision, no-op re-run, one handler edit (then a whole provision), teardown
    watch save -> updated at 100 ms: crudstack.watch against the proxy, from the save until the
        update's wait has finished (the watch's own polling and 100 ms quiet time included)
    watch save -> new answer, local: `provision.py --watch` on the embedded local AWS (no proxy),
        from the save until GET /items/{id} through the invoke URL returns the new answer

    python bench/far_region.py [--latency-ms 100] [--repeat 3] [--json]

The commands as a user types them (bench/command_runs.py): each phase a fresh `python provision.py
--target aws` (or teardown.py) process against the proxy, timed from process start to exit, split into
start-up, planning and execution, beside the fresh provision's floor; --local: the same on the embedded
local AWS, from nothing running to a serving invoke URL; --compare main: today's main in a git worktree,
interleaved with this tree, so both see the same load. Each row has its target and PASS/FAIL.

    python bench/far_region.py --command [--local] [--compare main] [--repeat 5] [--json]
    python bench/far_region.py --local [--compare main] [--repeat 5]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import logging
import os
import re
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

# Answers are handed back as moto gave them, but for the headers that describe one hop's connection.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
              "content-length"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive towards the client, as AWS's endpoints keep connections
    disable_nagle_algorithm = True   # TCP_NODELAY: no 40 ms delayed-ACK stall per answer (docs/performance.md)
    server: "_Server"

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        arrived = time.perf_counter()
        time.sleep(self.server.latency_s)   # the round trip to a far region; other threads wait alongside
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            status, reason, answer_headers = answer.status, answer.reason, answer.getheaders()
        finally:
            upstream.close()   # moto closes after every answer anyway
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in answer_headers if k.lower() not in HOP_BY_HOP]
        lines += [f"Content-Length: {len(payload)}", "Connection: keep-alive", "", ""]
        head = "\r\n".join(lines).encode("latin-1")
        # One write: header and body in the same segment.
        self.wfile.write(head + (payload if self.command != "HEAD" else b""))
        self.wfile.flush()
        self.server.count(arrived, *call_of(self.command, self.path, self.headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], latency_s: float):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.latency_s = upstream, latency_s
        self.requests = 0
        self.calls: list[tuple[float, float, str, str]] = []   # (arrived, answered, service, operation)
        self._lock = threading.Lock()

    def count(self, arrived: float, service: str, operation: str) -> None:
        with self._lock:
            self.requests += 1
            self.calls.append((arrived, time.perf_counter(), service, operation))


_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


def call_of(method: str, path: str, headers, body: bytes | None) -> tuple[str, str]:
    """(service, operation) of a signed request: the service from the signature's scope; the operation from
    the query protocol's Action, the JSON protocol's X-Amz-Target, else (REST: Lambda, API Gateway) the method and path."""
    scope = _SCOPE.search(headers.get("Authorization") or "")
    service = scope.group(1) if scope else "?"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    action = re.search(rb"(?:^|&)Action=(\w+)", body or b"")
    if action:
        return service, action.group(1).decode()
    return service, f"{method} {path.split('?')[0]}"


def is_write(operation: str) -> bool:
    """A call that changes something: REST calls by their method, the others by their operation's name."""
    from crudstack.aws import is_mutating

    if " " in operation:
        return not operation.startswith(("GET ", "HEAD "))
    return is_mutating(operation)


class FarRegion:
    """An AWS endpoint on 127.0.0.1 that answers each call latency_ms late: a proxy in front of a moto
    server it starts (or of `upstream`, an http://127.0.0.1:PORT endpoint you run). `endpoint` is the proxy's URL.

        with FarRegion(latency_ms=100) as region:
            Aws(region="us-east-1", endpoint_url=region.endpoint, ...)
    """

    def __init__(self, latency_ms: float = 100, *, upstream: str | None = None, log: Path | None = None):
        self.latency_ms = latency_ms
        self.upstream = upstream
        self.log = log
        self.endpoint: str | None = None
        self.moto: subprocess.Popen | None = None
        self._server: _Server | None = None

    @property
    def requests(self) -> int:
        return self._server.requests if self._server else 0

    def take_calls(self) -> list[tuple[float, float, str, str]]:
        """The calls answered since the last take: (arrived, answered, service, operation), perf_counter times."""
        with self._server._lock:
            calls, self._server.calls = self._server.calls, []
        return calls

    def start(self, timeout: float = 30) -> "FarRegion":
        if self.upstream is None:
            self._start_moto(timeout)
        host, port = self.upstream.removeprefix("http://").rstrip("/").split(":")
        self._server = _Server((host, int(port)), self.latency_ms / 1000)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def _start_moto(self, timeout: float) -> None:
        port = free_port()
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        self.upstream = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.moto.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.moto.returncode}")
            try:
                self.reset()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on port {port} within {timeout} s")

    def reset(self) -> None:
        """Empty the moto server behind the proxy (straight to it: no latency)."""
        request = urllib.request.Request(f"{self.upstream}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.moto is not None and self.moto.poll() is None:
            os.killpg(self.moto.pid, signal.SIGTERM)
            try:
                self.moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.moto.pid, signal.SIGKILL)
                self.moto.wait(timeout=5)

    def __enter__(self) -> "FarRegion":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the benchmark ------------------------------------------------------------------------------------------

HANDLER_LINE = 'to_api(found["Item"]), '


def edit_handler(code_dir: Path, n: int) -> None:
    """The n-th edit of get_item.py: GET /items/{id} then answers with "edit": n."""
    path = code_dir / "get_item.py"
    text = path.read_text(encoding="utf-8")
    edited = re.sub(r'\{\*\*to_api\(found\["Item"\]\), "edit": \d+\}', 'to_api(found["Item"])', text)
    assert edited.count(HANDLER_LINE) == 1, "get_item.py no longer answers with to_api(found[\"Item\"])"
    path.write_text(edited.replace(HANDLER_LINE, '{**to_api(found["Item"]), "edit": %d}, ' % n), encoding="utf-8")


def private_code(folder: Path) -> Path:
    from crudstack.config import ROOT

    code_dir = folder / "lambdas"
    shutil.copytree(ROOT / "lambdas", code_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return code_dir


def one_cycle(region: FarRegion, folder: Path, stack: str) -> dict:
    import boto3
    import yaml

    from crudstack.aws import Aws
    from crudstack.config import ROOT, load_config
    from crudstack.plan import Context, Options
    from crudstack.runner import Reporter, run
    from crudstack.watch import FileWatch, Watch

    folder.mkdir(parents=True)
    code_dir = private_code(folder)
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["stack"] = stack
    data["lambda"]["code_dir"] = str(code_dir)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(config_path)

    def new_aws() -> Aws:
        session = boto3.session.Session(region_name=config.region, aws_access_key_id="testing", aws_secret_access_key="testing")
        aws = Aws(region=config.region, endpoint_url=region.endpoint, session=session)
        aws.account_id  # noqa: B018 - resolved outside the timing, as bench/provision.py does
        aws.stats.reset()
        return aws

    figures = {}

    def phase(name: str, *, teardown: bool = False, before=None) -> Context:
        aws = new_aws()
        if before:
            before()
        ctx = Context(config=config, aws=aws, target="aws", options=Options(delete_data=True))
        started = time.perf_counter()
        run(ctx, Reporter(), teardown=teardown)
        figures[name] = {"seconds": time.perf_counter() - started, "reads": aws.stats.reads, "writes": aws.stats.writes}
        return ctx

    phase("fresh provision")
    phase("no-op re-run")
    ctx = phase("one handler edit", before=lambda: edit_handler(code_dir, 1))

    # The watch, as `provision.py --watch` runs it after that provision.
    ctx.aws.stats.reset()
    watch = Watch(ctx, config_path, provision_again=lambda cfg: ctx, say=lambda line: None)
    files = FileWatch(code_dir, config_path)
    edit_handler(code_dir, 2)
    saved = time.perf_counter()
    lines = watch.deploy(files.wait(lambda: False))
    assert "-> 1 function updated in" in lines[-1], lines
    figures["watch save -> updated"] = {"seconds": time.perf_counter() - saved, "reads": ctx.aws.stats.reads,
                                        "writes": ctx.aws.stats.writes}
    phase("teardown", teardown=True)
    return figures


def local_watch(folder: Path, saves: int) -> dict:
    """`provision.py --watch` on the embedded local AWS: save -> new answer at the invoke URL, `saves` times."""
    import yaml

    from crudstack.config import ROOT

    folder.mkdir(parents=True)
    code_dir = private_code(folder)
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(stack="benchwatch", target="local")
    data["local"] = {**data["local"], "port": free_port(), "state_dir": str(folder / "state")}
    data["lambda"]["code_dir"] = str(code_dir)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1")
    command = [sys.executable, str(ROOT / "provision.py"), "--config", str(config_path), "--outputs", str(folder / "outputs")]
    watching = subprocess.Popen([*command, "--watch"], cwd=folder, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    seconds, deployed = [], []
    printed: list[tuple[float, str]] = []   # (when, line) of the watch's "saved ..." lines
    output: list[str] = []
    try:
        for line in watching.stdout:
            if line.startswith("Watching"):
                break
        else:
            raise RuntimeError("provision.py --watch ended before it watched")

        def read() -> None:
            for line in watching.stdout:
                output.append(line)
                if line.startswith("saved "):
                    printed.append((time.perf_counter(), line))

        threading.Thread(target=read, daemon=True).start()
        invoke_url = json.loads((folder / "outputs" / "stack.json").read_text())["invoke_url"]
        item = _request("POST", f"{invoke_url}/items", {"name": "Widget"})["item"]
        item_url = f"{invoke_url}/items/{item['id']}"
        for n in range(1, saves + 1):
            edit_handler(code_dir, n)
            saved = time.perf_counter()
            deadline = saved + 60
            while _request("GET", item_url).get("edit") != n:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"save {n} not served within 60 s; the watch printed:\n{''.join(output)}")
                time.sleep(0.005)
            seconds.append(time.perf_counter() - saved)
            time.sleep(0.5)   # let the watch print and settle before the next save
            deployed.append(printed[-1][0] - saved if printed and printed[-1][0] > saved else None)
        watching.send_signal(signal.SIGINT)
        watching.wait(timeout=60)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait(timeout=10)
        subprocess.run([sys.executable, str(ROOT / "teardown.py"), "--config", str(config_path), "--yes", "--delete-data"],
                       cwd=folder, env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return {"seconds": seconds, "deployed": deployed}


def _request(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


TARGETS = {"fresh provision": 4.0, "no-op re-run": 1.5, "one handler edit": 1.5, "teardown": 2.5,
           "watch save -> updated": 1.5, "watch save -> new answer (local)": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=100, help="delay before each AWS call is answered (default 100)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--command", action="store_true", help="time `python provision.py --target aws` processes (subprocess mode)")
    parser.add_argument("--local", action="store_true", help="time the commands on the embedded local AWS (subprocess mode)")
    parser.add_argument("--compare", metavar="REF", help="also run REF (e.g. main) from a git worktree, interleaved")
    args = parser.parse_args()
    os.environ.update(FAKE_CREDENTIALS)
    if args.command or args.local:
        return commands(args)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="far-region-") as tmp:
        folder = Path(tmp)
        with FarRegion(args.latency_ms, log=folder / "moto.log") as region:
            one_cycle(region, folder / "warmup", "warmup")   # moto loads each service lazily on first use
            cycles = [one_cycle(region, folder / f"cycle{i}", f"far{i}") for i in range(args.repeat)]
        local = local_watch(folder / "local", args.repeat)
    rows = {}
    for name in cycles[0]:
        runs = [c[name]["seconds"] for c in cycles]
        rows[name] = {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs),
                      "reads": cycles[0][name]["reads"], "writes": cycles[0][name]["writes"], "target_s": TARGETS[name]}
    runs = local["seconds"]
    rows["watch save -> new answer (local)"] = {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs),
                                                "reads": None, "writes": None, "target_s": TARGETS["watch save -> new answer (local)"]}
    printed = [s for s in local["deployed"] if s is not None]
    if printed:   # of that, until the watch printed "saved ... -> 1 function updated" (the rest: the first GET's cold start)
        rows["watch save -> updated (local)"] = {"median_s": statistics.median(printed), "min_s": min(printed),
                                                 "max_s": max(printed), "reads": None, "writes": None, "target_s": None}
    if args.json:
        print(json.dumps({"latency_ms": args.latency_ms, "repeat": args.repeat, "phases": rows}, indent=2))
        return
    print(f"{args.latency_ms:g} ms a call (proxy in front of a moto server on loopback), {args.repeat} repetitions, "
          f"python {sys.version.split()[0]}")
    print("| phase | median s | min s | max s | reads | writes | calls x latency s | target s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        calls = "" if r["reads"] is None else f"{(r['reads'] + r['writes']) * args.latency_ms / 1000:.1f}"
        counts = ("", "") if r["reads"] is None else (r["reads"], r["writes"])
        print(f"| {name} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | {counts[0]} | {counts[1]} | {calls} | "
              f"{'' if r['target_s'] is None else ('< ' if name.startswith('watch') else '<= ') + format(r['target_s'], 'g')} |")


def commands(args) -> None:
    """The subprocess mode: each phase a fresh process, as a user runs it, this tree beside --compare's."""
    import command_runs as cr

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="far-region-") as tmp:
        folder = Path(tmp)
        trees = ([cr.worktree(args.compare, folder / "compare")] if args.compare else []) + [cr.Tree("this", cr.HERE)]
        if args.compare:
            trees[-1].label = "branch"
        docs = {}
        try:
            if args.command:
                with FarRegion(args.latency_ms, log=folder / "moto.log") as region:
                    floor = cr.chain_and_rates(region.upstream, folder / "floor")
                    for tree in trees:   # moto loads each service lazily on first use; Python compiles each tree once
                        cr.far_cycle(tree, region, folder / f"warmup-{tree.label}", f"warm{len(tree.label)}")
                    results = {t.label: [] for t in trees}
                    for i in range(args.repeat):
                        for tree in trees:
                            results[tree.label].append(cr.far_cycle(tree, region, folder / f"{tree.label}{i}", f"far{i}{tree.label[:4]}"))
                docs["command"] = cr.report(trees, results, args.latency_ms, floor)
            if args.local:
                results = {t.label: [] for t in trees}
                for i in range(args.repeat + 1):   # the first round compiles and warms the disk cache: not counted
                    for tree in trees:
                        runs = cr.local_cycle(tree, folder / f"local-{tree.label}{i}", f"loc{i}", free_port())
                        if i:
                            results[tree.label].append(runs)
                docs["local"] = cr.report(trees, results, None, None)
        finally:
            if args.compare:
                cr.remove_worktree(trees[0])
    if args.json:
        print(json.dumps(docs, indent=2, default=str))


if __name__ == "__main__":
    main()
