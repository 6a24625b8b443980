#!/usr/bin/env python3
"""Benchmark: how long the local AWS takes to start again on a large saved state (issue 7).

Builds the history the issue names, as a user would make it, in a private stack (free port,
temporary state dir, no AWS settings):

  - `python provision.py` 1 + 50 times, every run after the first changing one setting back and
    forth (a function's memory), so each run writes;
  - 10,000 items created through the invoke URL (8 clients), with the Lambda logs and metrics
    and API Gateway metrics they make;

then measures, in interleaved rounds, the time from starting `python -m crudstack.local.server`
to its first healthy answer (what provision.py waits for):

  - empty:  a server on an empty state dir (the baseline: Python, moto and our imports);
  - clean:  after a clean stop (SIGTERM: a last snapshot, nothing to replay);
  - crash:  after SIGKILL right after --tail more items (a snapshot plus the journal since it;
            a snapshot is taken once the journal would take about a second to replay, so a tail of
            about 400 items here is the longest a crash can leave).

Each round checks the state came back (item count) and the last round runs provision.py once
more, which must change nothing. The stack is torn down and the server stopped at the end.

    python bench/restart.py [--items 10000] [--provisions 50] [--rounds 5] [--tail 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crudstack.local import daemon  # noqa: E402
from crudstack.local.iam.credentials import local_credentials  # noqa: E402

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def provision(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # as on a machine without AWS
    result = subprocess.run([sys.executable, str(ROOT / "provision.py"), "--config", str(config), *args],
                            cwd=config.parent, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"provision.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def write_config(folder: Path, port: int, memory: int = 128) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(stack="bench", target="local")
    data["local"].update(port=port, state_dir=str(folder / "state"))
    data["lambda"]["functions"]["GetItemsFunction"]["memory_mb"] = memory
    path = folder / f"config-{memory}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def create_items(url: str, count: int, clients: int = 8) -> float:
    local = threading.local()

    def create(i: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        answer = local.session.post(url, json={"name": f"item {i}", "description": "x" * 40}, timeout=60)
        if answer.status_code != 201:
            raise SystemExit(f"POST /items answered {answer.status_code}: {answer.text}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(create, range(count)))
    return count / (time.perf_counter() - started)


def timed_start(port: int, state_dir: Path) -> float:
    started = time.perf_counter()
    daemon.ensure_running(port, state_dir, timeout=120)
    return time.perf_counter() - started


def sigkill(state_dir: Path) -> None:
    pid = daemon.status(state_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    while daemon.status(state_dir) is not None:
        time.sleep(0.02)


def summary(samples: list[float]) -> dict:
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3), "samples": [round(s, 3) for s in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--provisions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tail", type=int, default=200, help="items created between the last start and the SIGKILL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="crudstack-restart-"))
    port, empty_port = free_port(), free_port()
    state_dir, empty_dir = folder / "state", folder / "empty"
    configs = {128: write_config(folder, port, 128), 256: write_config(folder, port, 256)}
    results: dict = {"items": args.items, "provisions": args.provisions + 1, "rounds": args.rounds, "tail": args.tail}
    try:
        document = json.loads(provision(configs[128], "--json", "--quiet", "--outputs", str(folder / "outputs")).stdout)
        url = document["invoke_url"] + "/items"
        started = time.perf_counter()
        for run in range(args.provisions):
            provision(configs[256 if run % 2 == 0 else 128], "--quiet", "--outputs", str(folder / "outputs"))
        results["history_provision_s"] = round(time.perf_counter() - started, 1)
        results["items_per_s"] = round(create_items(url, args.items), 1)
        ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}",
                           **local_credentials(state_dir).for_boto3())
        expected = args.items

        times: dict[str, list[float]] = {"empty": [], "clean": [], "crash": []}
        replayed, recovered_in = [], []
        for round_number in range(args.rounds):
            # baseline: nothing saved
            times["empty"].append(timed_start(empty_port, empty_dir))
            daemon.stop(empty_dir)
            daemon_state = empty_dir / "data"
            if daemon_state.exists():
                import shutil
                shutil.rmtree(daemon_state)
            # clean stop, then start
            daemon.stop(state_dir)
            times["clean"].append(timed_start(port, state_dir))
            # a journal tail, then SIGKILL, then start
            create_items(url, args.tail)
            expected += args.tail
            sigkill(state_dir)
            times["crash"].append(timed_start(port, state_dir))
            report = json.loads((state_dir / "recovery.json").read_text())
            replayed.append(report["replayed"])
            recovered_in.append(report["seconds"])
            # Select=COUNT still stops at DynamoDB's 1 MB page: add up the pages
            count = sum(page["Count"] for page in ddb.get_paginator("scan").paginate(
                TableName="bench-ItemsTable", Select="COUNT"))
            if count != expected:
                raise SystemExit(f"round {round_number}: {count} items after the restart, {expected} expected")
            print(f"round {round_number + 1}: empty {times['empty'][-1]:.2f} s, clean {times['clean'][-1]:.2f} s, "
                  f"crash {times['crash'][-1]:.2f} s ({report['replayed']} records replayed)", file=sys.stderr)

        again = provision(configs[256 if args.provisions % 2 else 128], "--json", "--quiet",
                          "--outputs", str(folder / "outputs"))
        writes = json.loads(again.stdout)["aws_calls"]["writes"]
        data = state_dir / "data"
        results.update({
            "restart": {name: summary(samples) for name, samples in times.items()},
            "crash_replayed_records": replayed, "crash_recovery_s": recovered_in,
            "provision_after_restart_writes": writes,
            "snapshot_mb": round(max(p.stat().st_size for p in data.glob("snapshot-*.pickle")) / 1e6, 1),
            "final_items": expected,
        })
    finally:
        provision_cleanup(configs[128], folder)
        daemon.stop(state_dir)
        daemon.stop(empty_dir)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    restart = results["restart"]
    print(f"\n{results['provisions']} provision runs ({results['history_provision_s']} s), "
          f"{args.items} items through the invoke URL at {results['items_per_s']} items/s; snapshot "
          f"{results['snapshot_mb']} MB\n")
    print("| start of the local AWS | median s | min s | max s | vs empty |")
    print("|---|---:|---:|---:|---:|")
    base = restart["empty"]["median_s"]
    for name, label in (("empty", "empty state (baseline)"), ("clean", "after a clean stop"),
                        ("crash", "after SIGKILL (snapshot + journal tail)")):
        row = restart[name]
        print(f"| {label} | {row['median_s']:.2f} | {row['min_s']:.2f} | {row['max_s']:.2f} | {row['median_s'] / base:.2f}x |")
    print(f"\nRecords replayed after each SIGKILL: {replayed}; recovery inside the server: "
          f"{', '.join(f'{s:.2f}' for s in recovered_in)} s. provision.py afterwards: {writes} writes.")


def provision_cleanup(config: Path, folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run([sys.executable, str(ROOT / "teardown.py"), "--config", str(config), "--yes", "--delete-data",
                    "--quiet"], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


if __name__ == "__main__":
    main()
