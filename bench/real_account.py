#!/usr/bin/env python3
"""Benchmark: the four phases of issue 16 on the model of a real account, against its longest chain of waits.

Each phase runs in-process against moto (mock_aws) with crudstack/realistic.py's model in front, at
the model's typical delays (IAM about 10 s, a new table 8 s, a function 5 s, resources listed after
2 s), in simulated seconds (a SimClock is the run's clock and sleep, so no phase waits for real):

    fresh provision   critical path: the longest chain of the model's waits (AccountModel.critical_path)
    no-op re-run      critical path: 0 (reads only; no wait of the model's)
    one handler edit  critical path: the function's update (InProgress for `function` s)
    teardown          critical path: 0 (nothing waits: a table goes DELETING on its own)

Calls take no simulated time here, so what a phase takes beyond its critical path is the overshoot
of its polls and retries. Medians over --repeat seeds of tenacity's jitter.

    python bench/real_account.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ[key] = value
os.environ.pop("AWS_PROFILE", None)

import boto3  # noqa: E402
import yaml  # noqa: E402
from moto import mock_aws  # noqa: E402

from crudstack.aws import Aws  # noqa: E402
from crudstack.config import ROOT, load_config  # noqa: E402
from crudstack.plan import Context, Options  # noqa: E402
from crudstack.realistic import AccountModel, Delays, SimClock  # noqa: E402
from crudstack.runner import Reporter, run  # noqa: E402

PHASES = ("fresh provision", "no-op re-run", "one handler edit", "teardown")


def longest_chain(delays: Delays) -> float:
    return max(delays.table, delays.role + delays.function, delays.resource)


def one_cycle(seed: int, folder: Path) -> dict:
    random.seed(seed)
    code_dir = folder / "lambdas"
    shutil.copytree(ROOT / "lambdas", code_dir, ignore=shutil.ignore_patterns("__pycache__"))
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["lambda"]["code_dir"] = str(code_dir)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(path)
    delays = Delays.typical()
    ideal = {"fresh provision": longest_chain(delays), "no-op re-run": 0.0, "one handler edit": delays.function, "teardown": 0.0}
    clock = SimClock()
    figures = {}
    with mock_aws():
        model = AccountModel(clock=clock, delays=delays)
        session = boto3.session.Session(region_name=config.region)
        for phase in PHASES:
            if phase == "one handler edit":
                handler = code_dir / "get_item.py"
                handler.write_text(handler.read_text() + "\n# edited\n")
            aws = Aws(region=config.region, session=session, sleep=clock.sleep, clock=clock)
            model.attach(aws)
            started = clock.now
            run(Context(config=config, aws=aws, target="aws", options=Options(delete_data=True)), Reporter(),
                teardown=phase == "teardown")
            figures[phase] = {"simulated_s": clock.now - started, "critical_path_s": ideal[phase]}
            clock.now += delays.longest + 1   # every window of the model closes before the next phase
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="real-account-") as tmp:
        cycles = [one_cycle(seed, Path(tmp) / str(seed)) for seed in range(args.repeat)]
    rows = {}
    for phase in PHASES:
        times = [c[phase]["simulated_s"] for c in cycles]
        ideal = cycles[0][phase]["critical_path_s"]
        rows[phase] = {"median_s": round(statistics.median(times), 2), "worst_s": round(max(times), 2), "critical_path_s": ideal,
                       "median_ratio": round(statistics.median(times) / ideal, 3) if ideal else None,
                       "worst_ratio": round(max(times) / ideal, 3) if ideal else None}
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"model delays {Delays.typical()}, {args.repeat} seeds, simulated seconds")
    print("| phase | median s | worst s | critical path s | median / critical | worst / critical |\n|---|---:|---:|---:|---:|---:|")
    for phase, r in rows.items():
        ratio = lambda v: "" if v is None else f"{v:.2f}x"  # noqa: E731
        print(f"| {phase} | {r['median_s']:.2f} | {r['worst_s']:.2f} | {r['critical_path_s']:g} | {ratio(r['median_ratio'])} | "
              f"{ratio(r['worst_ratio'])} |")


if __name__ == "__main__":
    main()
