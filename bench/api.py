#!/usr/bin/env python3
"""Benchmark: the items API through the local invoke URL, next to boto3 straight to the same local AWS.

Provisions a private stack with `python provision.py` (free port, temporary state dir, no AWS
settings: exactly what a user runs), then measures in the same run:

  - warm latency p50/p99 of each route through the invoke URL (keep-alive HTTP client),
  - boto3 get_item / put_item against the same local AWS (the floor the gateway adds to),
  - requests/s for GET /items/{id} and for get_item at 1 and 8 concurrent clients,
  - the cold start of a Lambda worker: the first request after a configuration update
    retires the warm workers, minus a warm request to the same route;
  - with --peer, the best in-process peer in the same rounds: the same GET /items/{id} handler under
    `chalice local` with TCP_NODELAY (bench/peer_chalice.py; the handler runs in the server's own
    process), its boto3 calls going to a stock moto server (`python -m moto.server`) holding the same
    items. Ours keeps every handler in a worker process of its own.

Rounds are interleaved (every measure once per round) and medians across rounds are reported,
because this machine is shared and noisy. The stack is torn down and the local AWS stopped at
the end.

    python bench/api.py [--rounds 3] [--requests 200] [--items 100] [--peer] [--get-only] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import boto3
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REGION = "us-east-1"

from crudstack.local.iam.credentials import local_credentials  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_script(script: str, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # as on a machine without AWS
    result = subprocess.run([sys.executable, str(ROOT / script), "--config", str(config), *args],
                            cwd=config.parent, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode not in (0,):
        raise SystemExit(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class Bench:
    def __init__(self, folder: Path, items: int):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        data = yaml.safe_load((ROOT / "config.yaml").read_text())
        data.update(stack="bench", target="local")
        data["local"].update(port=port, state_dir=str(folder / "state"))
        # The request path is measured, not the stage throttle (default 100/s, burst 200, enforced locally
        # as on AWS): 8 clients send several hundred requests a second, so the bench stack gets the account's limits.
        data["api"]["throttle"] = {"rate_per_s": 10000, "burst": 5000}
        self.config = folder / "config.yaml"
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        document = json.loads(run_script("provision.py", self.config, "--json", "--quiet",
                                         "--outputs", str(folder / "outputs")).stdout)
        self.url = document["invoke_url"] + "/items"
        endpoint = f"http://127.0.0.1:{port}"
        # The local AWS accepts only its own credentials (crudstack/local/iam/credentials.py).
        self.own_credentials = local_credentials(folder / "state").for_boto3()
        credentials = dict(region_name=REGION, endpoint_url=endpoint, **self.own_credentials)
        self.dynamodb = boto3.client("dynamodb", **credentials)
        self.lambda_ = boto3.client("lambda", **credentials)
        self.table = "bench-ItemsTable"
        self.web = requests.Session()
        self.items = items
        self.ids = [self.create() for _ in range(items)]

    def create(self) -> str:
        answer = self.web.post(self.url, json={"name": "bench item", "description": "x" * 40}, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()["item"]["id"]

    def close(self) -> None:
        self.web.close()
        run_script("teardown.py", self.config, "--yes", "--delete-data", "--quiet")

    # One callable per measured operation; each makes one request and checks its answer.
    def operations(self) -> dict[str, Callable[[int], None]]:
        def expect(answer: requests.Response, status: int) -> None:
            assert answer.status_code == status, f"{answer.status_code} {answer.text[:200]}"

        posted: list[str] = []  # POST's items are DELETE's, so every round starts with the same table

        def post(i: int) -> None:
            answer = self.web.post(self.url, json={"name": "bench item", "description": "x" * 40}, timeout=30)
            expect(answer, 201)
            posted.append(answer.json()["item"]["id"])

        def delete(i: int) -> None:
            expect(self.web.delete(f"{self.url}/{posted.pop()}", timeout=30), 200)

        def direct_put(i: int) -> None:
            # A whole item as the API stores it (issue 4's fields too), so the routes can still serve it.
            self.dynamodb.put_item(TableName=self.table, Item={
                "id": {"S": ids[i % len(ids)]}, "name": {"S": "bench item"}, "description": {"S": "x" * 40},
                "createdAt": {"S": "2025-01-01T00:00:00.000Z"}, "updatedAt": {"S": "2025-01-01T00:00:00.000Z"},
                "version": {"N": "1"}})

        ids = self.ids
        return {  # in this order: GET /items lists the same `items` items in every round
            # ?limit=100: one page of all the items (issue 4 pages by 25 by default; before it, the
            # parameter was ignored and every item listed), so both versions do the same work.
            "GET /items": lambda i: expect(self.web.get(self.url, params={"limit": self.items}, timeout=30), 200),
            "POST /items": post,
            "GET /items/{id}": lambda i: expect(self.web.get(f"{self.url}/{ids[i % len(ids)]}", timeout=30), 200),
            "PUT /items/{id}": lambda i: expect(self.web.put(f"{self.url}/{ids[i % len(ids)]}", json={"name": f"renamed {i}"}, timeout=30), 200),
            "DELETE /items/{id}": delete,
            "boto3 get_item (direct)": lambda i: self.dynamodb.get_item(TableName=self.table, Key={"id": {"S": ids[i % len(ids)]}}),
            "boto3 put_item (direct)": direct_put,  # replaces existing items: the table does not grow
        }

    def latencies(self, operation: Callable[[int], None], n: int) -> list[float]:
        for i in range(5):  # warm: the worker, the connection, moto's code paths
            operation(i)
        samples = []
        for i in range(n):
            started = time.perf_counter()
            operation(i)
            samples.append(time.perf_counter() - started)
        return samples

    def throughput(self, make_operation: Callable[[], Callable[[int], None]], clients: int, n: int) -> float:
        """Requests per second of `clients` threads, each with its own connection, n requests in all."""
        operations = [make_operation() for _ in range(clients)]
        barrier = threading.Barrier(clients + 1)
        failures: list[BaseException] = []

        def worker(operation: Callable[[int], None], share: int) -> None:
            for i in range(5):  # concurrently, so that every Lambda worker needed is warm before timing
                operation(i)
            barrier.wait()
            try:
                for i in range(share):
                    operation(i)
            except BaseException as exc:  # reported after the timing
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(op, n // clients)) for op in operations]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise failures[0]
        return (n // clients) * clients / elapsed

    def http_get_one(self) -> Callable[[int], None]:
        session, ids = requests.Session(), self.ids

        def get(i: int) -> None:
            answer = session.get(f"{self.url}/{ids[i % len(ids)]}", timeout=30)
            assert answer.status_code == 200, answer.text

        return get

    def direct_get_one(self) -> Callable[[int], None]:
        client, ids = boto3.client("dynamodb", region_name=REGION, endpoint_url=self.dynamodb.meta.endpoint_url,
                                   **self.own_credentials), self.ids
        return lambda i: client.get_item(TableName=self.table, Key={"id": {"S": ids[i % len(ids)]}})

    def cold_start(self, round_number: int) -> tuple[float, float]:
        """(first request after a configuration update, the warm request after it), in seconds."""
        function = "bench-GetItemFunction"
        variables = self.lambda_.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
        self.lambda_.update_function_configuration(
            FunctionName=function, Environment={"Variables": {**variables, "BENCH_ROUND": str(round_number)}})
        url = f"{self.url}/{self.ids[0]}"
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            answer = self.web.get(url, timeout=60)
            timings.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
        return timings[0], timings[1]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Peer:
    """chalice local (TCP_NODELAY) serving our GET handler, in front of a stock moto server with our items."""

    def __init__(self, bench: Bench):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        moto_port, self.port = free_port(), free_port()
        moto_endpoint = f"http://127.0.0.1:{moto_port}"
        self.processes = [subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        wait_for(lambda: requests.get(f"{moto_endpoint}/moto-api/", timeout=2).status_code < 500, "the moto server")
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint,
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        self.table = "peer-ItemsTable"
        dynamodb.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        for item in bench.dynamodb.scan(TableName=bench.table, ConsistentRead=True)["Items"]:
            dynamodb.put_item(TableName=self.table, Item=item)
        self.processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "peer_chalice.py"), "--port", str(self.port), "--endpoint", moto_endpoint,
             "--table", self.table], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.url = f"http://127.0.0.1:{self.port}/items"
        self.ids = bench.ids
        wait_for(lambda: requests.get(f"{self.url}/{self.ids[0]}", timeout=2).status_code == 200, "chalice local")

    def get_one(self) -> Callable[[int], None]:
        session, ids = requests.Session(), self.ids

        def get(i: int) -> None:
            answer = session.get(f"{self.url}/{ids[i % len(ids)]}", timeout=30)
            assert answer.status_code == 200, answer.text

        return get

    def close(self) -> None:
        for process in self.processes:  # stopped by pid, children of this script only
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per route per round")
    parser.add_argument("--items", type=int, default=100, choices=range(1, 101), metavar="1..100",
                        help="items in the table when GET /items?limit=<items> is measured (one page)")
    parser.add_argument("--peer", action="store_true",
                        help="also measure the same GET handler under chalice local (TCP_NODELAY) and a stock moto server")
    parser.add_argument("--get-only", action="store_true",
                        help="measure GET /items/{id} and the direct get_item only (no other routes, no cold start)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crudstack-bench-") as folder:
        bench = Bench(Path(folder), args.items)
        peer = None
        try:
            peer = Peer(bench) if args.peer else None
            operations = bench.operations()
            if args.get_only:
                operations = {name: operations[name] for name in ("GET /items/{id}", "boto3 get_item (direct)")}
            if peer is not None:
                operations["peer GET /items/{id}"] = peer.get_one()
            rounds: list[dict] = []
            for number in range(args.rounds):
                figures: dict = {"latency": {}, "throughput": {}}
                for name, operation in operations.items():
                    samples = bench.latencies(operation, args.requests)
                    figures["latency"][name] = {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}
                for clients in (1, 8):
                    total = max(args.requests, 40 * clients)
                    figures["throughput"][f"GET /items/{{id}} x{clients}"] = bench.throughput(bench.http_get_one, clients, total)
                    figures["throughput"][f"boto3 get_item x{clients}"] = bench.throughput(bench.direct_get_one, clients, total)
                    if peer is not None:
                        figures["throughput"][f"peer GET /items/{{id}} x{clients}"] = bench.throughput(peer.get_one, clients, total)
                figures["cold_start"] = (0.0, 0.0) if args.get_only else bench.cold_start(number)
                rounds.append(figures)
        finally:
            if peer is not None:
                peer.close()
            bench.close()

    median = statistics.median
    result = {
        "latency_ms": {name: {q: round(median(r["latency"][name][q] for r in rounds) * 1000, 2) for q in ("p50", "p99")}
                       for name in rounds[0]["latency"]},
        "requests_per_s": {name: round(median(r["throughput"][name] for r in rounds), 1) for name in rounds[0]["throughput"]},
        "cold_start_ms": {"first request after an update": round(median(r["cold_start"][0] for r in rounds) * 1000, 1),
                          "next (warm) request": round(median(r["cold_start"][1] for r in rounds) * 1000, 1)},
        "settings": {"rounds": args.rounds, "requests": args.requests, "items": args.items,
                     "python": sys.version.split()[0], "cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }
    latency = result["latency_ms"]
    result["ratio_get_one_to_get_item_p50"] = round(latency["GET /items/{id}"]["p50"] / latency["boto3 get_item (direct)"]["p50"], 2)
    if args.peer:
        rates = result["requests_per_s"]
        result["ratio_get_one_to_peer_p50"] = round(latency["GET /items/{id}"]["p50"] / latency["peer GET /items/{id}"]["p50"], 2)
        result["ratio_get_one_to_peer_x8"] = round(rates["GET /items/{id} x8"] / rates["peer GET /items/{id} x8"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    settings = result["settings"]
    print(f"local invoke URL vs boto3 to the same local AWS; medians of {settings['rounds']} interleaved rounds, "
          f"{settings['requests']} timed requests each, {settings['items']} items, python {settings['python']}, {settings['cpus']} CPUs")
    print("\n| operation | p50 ms | p99 ms |\n|---|---:|---:|")
    for name, row in latency.items():
        print(f"| {name} | {row['p50']:.1f} | {row['p99']:.1f} |")
    print("\n| throughput | requests/s |\n|---|---:|")
    for name, value in result["requests_per_s"].items():
        print(f"| {name} | {value:.0f} |")
    cold = result["cold_start_ms"]
    if not args.get_only:
        print(f"\ncold start: first request after an update {cold['first request after an update']:.0f} ms, "
              f"next request {cold['next (warm) request']:.0f} ms")
    print(f"GET /items/{{id}} p50 / boto3 get_item p50 = {result['ratio_get_one_to_get_item_p50']:.2f} (target <= 1.5)")
    if args.peer:
        print(f"GET /items/{{id}} p50 / peer p50 = {result['ratio_get_one_to_peer_p50']:.2f} (target <= 0.9); "
              f"8 clients, ours / peer = {result['ratio_get_one_to_peer_x8']:.2f} (target >= 1.2)")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in settings['load_average'])}")


if __name__ == "__main__":
    main()
