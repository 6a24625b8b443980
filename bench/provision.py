#!/usr/bin/env python3
"""Benchmark: wall time and AWS calls of a fresh provision, a no-op re-run and a teardown.

Runs against a plain moto server on 127.0.0.1 (no gateway, no runtime), so it measures
the provisioning code and its call count, not our local AWS. Each repetition uses its
own stack name; medians are reported.

    python bench/provision.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ[key] = value
os.environ.pop("AWS_PROFILE", None)

import boto3  # noqa: E402
import yaml  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from crudstack.aws import Aws  # noqa: E402
from crudstack.config import ROOT, parse_config  # noqa: E402
from crudstack.plan import Context, Options  # noqa: E402
from crudstack.runner import Reporter, run  # noqa: E402


def one_cycle(endpoint: str, stack: str) -> dict:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["stack"] = stack
    config = parse_config(data)
    figures = {}
    for phase, teardown in (("fresh provision", False), ("no-op re-run", False), ("teardown", True)):
        session = boto3.session.Session(region_name=config.region, aws_access_key_id="testing", aws_secret_access_key="testing")
        aws = Aws(region=config.region, endpoint_url=endpoint, session=session)
        aws.account_id  # noqa: B018 - resolved outside the timing, as the CLI does before step 1
        aws.stats.reset()
        ctx = Context(config=config, aws=aws, target="aws", options=Options(delete_data=True))
        started = time.perf_counter()
        run(ctx, Reporter(), teardown=teardown)
        figures[phase] = {"seconds": time.perf_counter() - started, "reads": aws.stats.reads, "writes": aws.stats.writes}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        one_cycle(endpoint, "warmup")  # moto loads each service lazily on first use
        cycles = [one_cycle(endpoint, f"bench{i}") for i in range(args.repeat)]
    finally:
        server.stop()
    rows = {}
    for phase in cycles[0]:
        rows[phase] = {
            "median_s": statistics.median(c[phase]["seconds"] for c in cycles),
            "min_s": min(c[phase]["seconds"] for c in cycles),
            "max_s": max(c[phase]["seconds"] for c in cycles),
            "reads": cycles[0][phase]["reads"],
            "writes": cycles[0][phase]["writes"],
        }
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"moto server on loopback, {args.repeat} repetitions, python {sys.version.split()[0]}")
    print("| phase | median s | min s | max s | reads | writes |\n|---|---:|---:|---:|---:|---:|")
    for phase, r in rows.items():
        print(f"| {phase} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | {r['reads']} | {r['writes']} |")


if __name__ == "__main__":
    main()
