#!/usr/bin/env python3
"""Reliability figures for RELIABILITY.md: runs under injected faults, permanent refusals,
kill-and-resume, and the eventual-consistency model's waits against its critical path.

    python bench/reliability.py chaos [--runs 50] [--rate 0.2]
    python bench/reliability.py denied
    python bench/reliability.py kill [--provision 40] [--teardown 20]
    python bench/reliability.py consistency [--runs 20]
    python bench/reliability.py all

chaos, denied and kill run provision.py / teardown.py as subprocesses against a moto server on
127.0.0.1 (tests/support/harness.py); consistency runs in-process under moto's mock with the model of
crudstack/realistic.py (its delays; quotas off), in simulated seconds. Exit code 1 if any scenario failed (a run
that did not converge, a duplicate, an orphan, a refusal that was retried).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ[key] = value
for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(key, None)

import yaml  # noqa: E402

from crudstack.config import ROOT, parse_config  # noqa: E402
from crudstack.steps import STEPS  # noqa: E402
from tests.support.harness import Cli, MotoServer, baseline, chaos_cycle, kill_and_resume  # noqa: E402

DENIED_CALLS = ("DescribeTable", "CreateTable", "CreateRole", "CreateFunction", "CreateRestApi", "PutIntegration",
                "CreateDeployment", "CreateTopic", "PutMetricAlarm")


def chaos(server, cli, base, args) -> tuple[bool, dict]:
    verdicts = []
    for seed in range(1, args.runs + 1):
        verdict = chaos_cycle(server, cli, base, seed, rate=args.rate)
        verdicts.append(verdict)
        print(f"  seed {seed:3d}: {'ok' if not verdict.problems else 'FAILED ' + '; '.join(verdict.problems)} "
              f"{verdict.figures}", file=sys.stderr)
    ok = [v for v in verdicts if not v.problems]
    figures = {
        "runs": len(verdicts), "converged": len(ok),
        "faults_provision": sum(v.figures.get("injected", 0) for v in verdicts),
        "retries_provision": sum(v.figures.get("retries", 0) for v in verdicts),
        "answers_lost": sum(v.figures.get("answers_lost", 0) for v in verdicts),
        "faults_teardown": sum(v.figures.get("injected_teardown", 0) for v in verdicts),
        "retries_teardown": sum(v.figures.get("retries_teardown", 0) for v in verdicts),
        "median_provision_s": statistics.median(v.figures["provision_s"] for v in ok) if ok else None,
        "worst_provision_s": max(v.figures["provision_s"] for v in ok) if ok else None,
        "worst_teardown_s": max(v.figures["teardown_s"] for v in ok) if ok else None,
        "duplicates": sum(len(v.duplicates) for v in verdicts), "orphans": sum(len(v.orphans) for v in verdicts),
    }
    return len(ok) == len(verdicts), figures


def denied(server, cli, base, args) -> tuple[bool, dict]:
    rows, passed = [], True
    for operation in DENIED_CALLS:
        server.reset()
        outcome = cli.run("provision", "--chaos", "1", "--chaos-faults", "access-denied", "--chaos-calls", operation)
        error = next((line for line in outcome.stderr.splitlines() if line.startswith("error: ")), "")
        tried = re.search(r"Chaos: (\d+) of (\d+) AWS calls", outcome.stderr)
        attempts = int(tried.group(2)) if tried else None
        named = next(((f"Step {s.number} {s.title}", error.removeprefix(f"error: Step {s.number} {s.title}: ").split(": ")[0])
                      for s in STEPS if error.startswith(f"error: Step {s.number} {s.title}: ")), None)
        row = {"call": operation, "exit": outcome.code, "attempts": attempts, "seconds": round(outcome.seconds, 2),
               "step": named[0] if named else None, "resource": named[1] if named else None}
        rows.append(row)
        passed &= outcome.code == 1 and attempts == 1 and bool(named) and "Traceback" not in outcome.stderr
        print(f"  {row}", file=sys.stderr)
    return passed, {"rows": rows, "worst_s": max(r["seconds"] for r in rows)}


def kill(server, cli, base, args) -> tuple[bool, dict]:
    figures = {}
    passed = True
    for command, count in (("provision", args.provision), ("teardown", args.teardown)):
        verdicts = []
        for seed in range(1, count + 1):
            verdict = kill_and_resume(server, cli, base, command, seed)
            verdicts.append(verdict)
            print(f"  {command} seed {seed:3d}: killed after {verdict.calls_before_cut:3d} calls at {verdict.cut_at}: "
                  f"{'ok' if not verdict.problems else 'FAILED ' + '; '.join(verdict.problems)}", file=sys.stderr)
        calls_at_kill = [v.calls_before_cut for v in verdicts]
        figures[command] = {
            "kill_points": len(verdicts),
            "killed_in_calls": sorted(set(re.sub(r"^aws (\S+).*", r"\1", v.cut_at) for v in verdicts if v.cut_at.startswith("aws "))),
            "calls_at_kill_min_max": [min(calls_at_kill), max(calls_at_kill)],
            "failed_resumes": sum(1 for v in verdicts if not v.resumed),
            "duplicates": sum(len(v.duplicates) for v in verdicts), "orphans": sum(len(v.orphans) for v in verdicts),
            "failed": sum(1 for v in verdicts if v.problems),
            "median_s_per_point": round(statistics.median(v.seconds for v in verdicts), 2),
        }
        passed &= all(not v.problems for v in verdicts)
    return passed, figures


def consistency(args) -> tuple[bool, dict]:
    import boto3
    from moto import mock_aws

    from crudstack.aws import Aws
    from crudstack.plan import Context
    from crudstack.runner import Reporter, run
    from crudstack.realistic import AccountModel, Delays, SimClock

    config = parse_config(yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8")))
    figures, passed = {}, True
    # Roughly what AWS shows (IAM propagation ~10 s, a new table ~8 s, a function ~5 s), and the test suite's set.
    for label, delays in (("aws-like", Delays(role=10, table=8, function=5, resource=2)), ("tests", Delays(role=8, table=6, function=5, resource=4))):
        times, waits = [], []
        for seed in range(args.runs):
            random.seed(seed)   # tenacity's jitter
            clock = SimClock()
            with mock_aws():
                session = boto3.session.Session(region_name=config.region)
                aws = Aws(region=config.region, session=session, sleep=clock.sleep, clock=clock)
                model = AccountModel(clock, delays, quotas=False).attach(aws)   # delays alone, as RELIABILITY.md measured them
                run(Context(config=config, aws=aws, target="aws"), Reporter())
            times.append(clock.now)
            waits.append(len(clock.sleeps))
        ideal = model.critical_path()
        figures[label] = {"delays": vars(delays), "critical_path_s": ideal, "median_s": round(statistics.median(times), 1),
                          "worst_s": round(max(times), 1), "median_overhead": round(statistics.median(times) / ideal, 2),
                          "worst_overhead": round(max(times) / ideal, 2), "median_waits": statistics.median(waits)}
        passed &= min(times) >= ideal
    return passed, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("chaos", "denied", "kill", "consistency", "all"))
    parser.add_argument("--runs", type=int, help="chaos: seeded runs (default 50); consistency: seeds (default 20)")
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--provision", type=int, default=40, help="kill points over provision")
    parser.add_argument("--teardown", type=int, default=20, help="kill points over teardown")
    args = parser.parse_args()
    scenarios = ("chaos", "denied", "kill", "consistency") if args.scenario == "all" else (args.scenario,)
    results, passed = {}, True
    started = time.monotonic()
    if "consistency" in scenarios:
        runs = args.runs
        args.runs = args.runs or 20
        ok, results["consistency"] = consistency(args)
        passed &= ok
        args.runs = runs
    served = [s for s in scenarios if s != "consistency"]
    if served:
        with tempfile.TemporaryDirectory() as tmp, MotoServer(log=Path(tmp) / "moto.log") as server:
            cli = Cli(server.endpoint, Path(tmp) / "cli")
            base = baseline(server, cli)
            results["baseline"] = {"provision_calls": base.provision_calls, "teardown_calls": base.teardown_calls}
            args.runs = args.runs or 50
            for name in served:
                ok, results[name] = {"chaos": chaos, "denied": denied, "kill": kill}[name](server, cli, base, args)
                passed &= ok
    results["seconds"] = round(time.monotonic() - started, 1)
    results["passed"] = passed
    results["python"] = sys.version.split()[0]
    print(json.dumps(results, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
