"""The commands as a user types them (issue 24): `python provision.py` and `python teardown.py`, each a
fresh process, timed from process start to exit; used by `bench/far_region.py --command` and `--local`.

--command: against FarRegion (every call answered after --latency-ms), four phases: fresh provision,
no-op re-run, one handler edit, teardown. The proxy's log of calls splits each run into start-up (process
start to the first AWS call), planning (to the first call that changes something), execution (to the last
answer) and exit. The floor of a fresh provision is computed here too: start-up plus the longest chain of
dependent calls (the caller identity, one round of reads, then the longest path through the execution
graph, counted in calls), and the time AWS's documented rates need for the run's calls (after start-up and
the calls the rate-bound ones wait for, the last answered a round trip after it is sent).

--local: the embedded local AWS, not running at first: fresh provision to a serving invoke URL (until
GET /items answers 200), no-op re-run, teardown (which stops the local AWS).

--compare REF runs the same phases on REF (e.g. main, checked out in a temporary git worktree), interleaved
with this tree's, so both meet the same machine load.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# Rates AWS documents for calls crudstack/quotas.py does not cover yet (when it does, its figure is used):
# "PutMetricAlarm: 3 transactions per second (TPS)", CloudWatch service quotas,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html
# botocore names the service cloudwatch, its signature monitoring: both are keys.
EXTRA_RATES = {(service, "PutMetricAlarm"): (3.0, 3.0) for service in ("cloudwatch", "monitoring")}   # (a second, burst)


@dataclass
class Tree:
    label: str
    root: Path


@dataclass
class Run:
    seconds: float
    rc: int
    output: str
    calls: list = field(default_factory=list)   # (arrived, answered, service, operation), seconds from process start


def worktree(ref: str, folder: Path) -> Tree:
    """`ref` (e.g. main) checked out in folder, detached: the code to compare against."""
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--force", str(folder), ref],
                   check=True, capture_output=True)
    return Tree(ref, folder)


def remove_worktree(tree: Tree) -> None:
    subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(tree.root)], capture_output=True)


def stack_config(tree: Tree, folder: Path, stack: str, **local) -> Path:
    """A config.yaml for `stack` with its own copy of the tree's lambdas/ (and, for the local target, its port and state dir)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    code_dir = folder / "lambdas"
    if not code_dir.exists():
        shutil.copytree(tree.root / "lambdas", code_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    data = yaml.safe_load((tree.root / "config.yaml").read_text())
    data["stack"] = stack
    data["lambda"]["code_dir"] = str(code_dir)
    if local:
        data["target"] = "local"
        data["local"] = {**data["local"], **local}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def command(tree: Tree, script: str, config: Path, *extra: str, env: dict, region=None) -> Run:
    """One run of `python <script>` as a user types it, from process start to exit."""
    if region is not None:
        region.take_calls()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(tree.root / script), "--config", str(config), *extra],
                          cwd=config.parent, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    seconds = time.perf_counter() - started
    calls = [(a - started, b - started, service, op) for a, b, service, op in region.take_calls()] if region is not None else []
    return Run(seconds, done.returncode, done.stdout + done.stderr, sorted(calls))


def split(run: Run) -> dict:
    """Where a run's time went, from the proxy's log: start-up, planning, execution, exit."""
    from far_region import is_write

    if not run.calls:
        return {"start-up": run.seconds, "planning": 0.0, "execution": 0.0, "exit": 0.0, "identity lookups": 0, "unbound done": 0.0}
    first = run.calls[0][0]
    writes = [c for c in run.calls if is_write(c[3])]
    last = max(c[1] for c in run.calls)
    planned = writes[0][0] if writes else last
    unbound = max((c[1] for c in run.calls if (c[2], c[3]) not in EXTRA_RATES), default=0.0)
    return {"start-up": first, "planning": planned - first, "execution": last - planned, "exit": run.seconds - last,
            "identity lookups": sum(1 for c in run.calls if c[3] == "GetCallerIdentity"), "unbound done": unbound}


# -- the floor ----------------------------------------------------------------------------------------------

def chain_and_rates(endpoint: str, folder: Path) -> dict:
    """A fresh provision of this tree's code, in-process against `endpoint` (no latency): the longest chain of
    dependent calls through its execution graph, and the seconds AWS's documented rates need for its calls."""
    import boto3

    from crudstack.aws import Aws
    from crudstack.config import load_config
    from crudstack.executor import execute, graph
    from crudstack.plan import Context
    from crudstack.quotas import quota_for, quota_key
    from crudstack.runner import plan_all, prime
    from crudstack.steps import STEPS

    config = load_config(stack_config(Tree("here", HERE), folder, "floor"))
    session = boto3.session.Session(region_name=config.region, aws_access_key_id="testing", aws_secret_access_key="testing")
    aws = Aws(region=config.region, endpoint_url=endpoint, session=session)
    current = threading.local()
    made: list[tuple[str, str]] = []

    def note(model, **_):
        call = (model.service_model.service_name, model.name)
        made.append(call)
        if getattr(current, "calls", None) is not None:
            current.calls.append(call)

    aws.register("before-call", note)
    ctx = Context(config=config, aws=aws, target="aws")
    prime(ctx)
    planned = plan_all(ctx, list(STEPS), teardown=False)
    items = [(step, c) for step in STEPS for c in planned[step] if c.action.mutates and c.calls]
    per_change: dict[int, list] = {}

    class Mark:   # first record of each change: what this thread calls next belongs to that change
        def __init__(self, change):
            self.change = change

        def run(self, _run):
            current.calls = per_change.setdefault(id(self.change), [])

    for _, change in items:
        change.calls.insert(0, Mark(change))
    execute(ctx, items)
    nodes = graph(items)
    longest: dict[int, list] = {}

    def path(node) -> list:
        if node.index not in longest:
            before = max((path(nodes[i]) for i in node.waits_for), key=len, default=[])
            longest[node.index] = before + [(node.change, op) for op in per_change.get(id(node.change), [])]
        return longest[node.index]

    chain = max((path(n) for n in nodes), key=len, default=[])
    calls = [("sts", "GetCallerIdentity", "the caller identity (ARNs name the account)"),
             ("*", "reads", "one round of reads, all at once (a fresh stack has nothing to find)")]
    calls += [(service, op, f"{change.kind} {change.name}") for change, (service, op) in chain]
    def budget(service: str, op: str) -> tuple[str, float, float] | None:
        quota = quota_for(service, op)
        if quota is not None:
            return quota_key(service, op), quota.requests / quota.per_s, float(quota.burst or quota.requests)
        if (service, op) in EXTRA_RATES:
            return (f"cloudwatch:{op}", *EXTRA_RATES[(service, op)])
        return None

    budgets: dict[str, list] = {}
    for service, op in made:
        known = budget(service, op)
        if known is not None:
            budgets.setdefault(known[0], [0, known[1], known[2]])[0] += 1
    rates = {key: max(0.0, (n - burst) / rate) for key, (n, rate, burst) in budgets.items()}
    slowest = max(rates, key=rates.get, default=None)

    def before_first(node) -> int | None:   # calls in sequence before the node's first call of the slowest budget
        own = [i for i, (service, op) in enumerate(per_change.get(id(node.change), [])) if (budget(service, op) or ("",))[0] == slowest]
        if not own:
            return None
        return max((len(path(nodes[i])) for i in node.waits_for), default=0) + own[0]

    starts = [n for n in (before_first(node) for node in nodes) if n is not None]
    return {"chain": calls, "rate_s": rates.get(slowest, 0.0), "rate_budget": slowest,
            "rate_calls": budgets.get(slowest, [0])[0], "rate_calls_before": 2 + min(starts, default=0)}


# -- the runs -----------------------------------------------------------------------------------------------

def aws_env(endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=endpoint, NO_COLOR="1", PYTHONDONTWRITEBYTECODE="")
    return env


def far_cycle(tree: Tree, region, folder: Path, stack: str) -> dict[str, Run]:
    from far_region import edit_handler

    config = stack_config(tree, folder, stack)
    env = aws_env(region.endpoint)
    out = ["--target", "aws", "--outputs", str(folder / "outputs")]
    runs = {"fresh provision": command(tree, "provision.py", config, *out, env=env, region=region),
            "no-op re-run": command(tree, "provision.py", config, *out, env=env, region=region)}
    edit_handler(folder / "lambdas", 1)
    runs["one handler edit"] = command(tree, "provision.py", config, *out, env=env, region=region)
    runs["teardown"] = command(tree, "teardown.py", config, "--target", "aws", "--yes", "--delete-data", env=env, region=region)
    for name, run in runs.items():
        if run.rc != 0:
            raise RuntimeError(f"{tree.label}: {name} exited {run.rc}:\n{run.output[-3000:]}")
    return runs


def local_cycle(tree: Tree, folder: Path, stack: str, port: int) -> dict[str, Run]:
    config = stack_config(tree, folder, stack, port=port, state_dir=str(folder / "state"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(NO_COLOR="1")
    out = ["--outputs", str(folder / "outputs")]
    started = time.perf_counter()
    fresh = command(tree, "provision.py", config, *out, env=env)
    if fresh.rc == 0:   # to a serving invoke URL: until GET /items answers
        url = json.loads((folder / "outputs" / "stack.json").read_text())["invoke_url"] + "/items"
        deadline = time.perf_counter() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=30) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.01)
        fresh.seconds = time.perf_counter() - started
    runs = {"local: fresh provision to a serving URL": fresh,
            "local: no-op re-run": command(tree, "provision.py", config, *out, env=env),
            "local: teardown": command(tree, "teardown.py", config, "--yes", "--delete-data", env=env)}
    for name, run in runs.items():
        if run.rc != 0:
            raise RuntimeError(f"{tree.label}: {name} exited {run.rc}:\n{run.output[-3000:]}")
    return runs


# -- the table ----------------------------------------------------------------------------------------------

TARGETS = {"start-up (to the first AWS call)": 0.4, "no-op re-run": 1.0, "one handler edit": 1.2, "teardown": 1.5,
           "local: fresh provision to a serving URL": 2.5, "local: no-op re-run": 0.8, "local: teardown": 1.5}
FRESH_OVER_FLOOR = 1.1


def report(trees: list[Tree], results: dict[str, list[dict[str, Run]]], latency_ms: float | None, floor: dict | None) -> dict:
    """Print the medians, per tree, against the targets; return them as a document."""
    doc: dict = {"latency_ms": latency_ms, "trees": {}}
    here = trees[-1].label
    for tree in trees:
        cycles = results[tree.label]
        rows: dict[str, dict] = {}
        for name in cycles[0]:
            rows[name] = {"median_s": statistics.median(c[name].seconds for c in cycles),
                          "min_s": min(c[name].seconds for c in cycles), "max_s": max(c[name].seconds for c in cycles)}
            if cycles[0][name].calls:
                parts = [split(c[name]) for c in cycles]
                rows[name]["split"] = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
                rows[name]["calls"] = len(cycles[0][name].calls)
        if latency_ms is not None:
            startup = statistics.median(split(c[n])["start-up"] for c in cycles for n in c if c[n].calls)
            rows["start-up (to the first AWS call)"] = {"median_s": startup}
            if floor is not None:
                chain_s = startup + len(floor["chain"]) * latency_ms / 1000
                # The rate-bound calls start after the calls they wait for; the last of them is answered a round trip
                # after it is sent.
                rate_s = startup + (floor["rate_calls_before"] + 1) * latency_ms / 1000 + floor["rate_s"]
                rows["fresh provision"]["rate_floor_s"] = rate_s
                rows["fresh provision"]["floor_s"] = max(chain_s, rate_s)
                rows["fresh provision"]["chain_floor_s"] = chain_s
        doc["trees"][tree.label] = rows
    print(f"\n{'command as a user types it, ' + format(latency_ms, 'g') + ' ms a call' if latency_ms is not None else 'local target'}; "
          f"medians of {len(results[here])} runs per tree, interleaved; load {os.getloadavg()[0]:.2f}")
    labels = [t.label for t in trees]
    head = " | ".join(f"{label} s" for label in labels)
    print(f"| phase | {head} | {here + '/' + labels[0] if len(labels) > 1 else 'ratio'} | target | pass |\n|---|" + "---:|" * (len(labels) + 2) + "---|")
    mine = doc["trees"][here]
    for name in mine:
        values = [doc["trees"][label].get(name, {}).get("median_s") for label in labels]
        target = TARGETS.get(name)
        if name == "fresh provision" and "floor_s" in mine[name]:
            target = FRESH_OVER_FLOOR * mine[name]["floor_s"]
        ratio = f"{values[-1] / values[0]:.2f}" if len(values) > 1 and values[0] else ""
        verdict = "" if target is None else ("PASS" if values[-1] <= target else "FAIL")
        shown = f"<= {target:.2f}" + (f" (1.1 x floor {mine[name]['floor_s']:.2f})" if name == "fresh provision" and "floor_s" in mine[name] else "") \
            if target is not None else ""
        print(f"| {name} | " + " | ".join("" if v is None else f"{v:.2f}" for v in values) + f" | {ratio} | {shown} | {verdict} |")
    if latency_ms is not None:
        print("\nWhere the time goes (medians, s): start-up / planning / execution / exit; identity lookups; "
              "done but for the rate-bound calls (PutMetricAlarm) at")
        for label in labels:
            for name, row in doc["trees"][label].items():
                if "split" in row:
                    s = row["split"]
                    print(f"  {label:>10} {name:<18} {s['start-up']:.2f} / {s['planning']:.2f} / {s['execution']:.2f} / "
                          f"{s['exit']:.2f}; {s['identity lookups']:.0f}; {s['unbound done']:.2f}; {row['calls']} calls")
    if floor is not None:
        rows = mine["fresh provision"]
        print(f"\nFloor of a fresh provision ({here}'s code): the larger of\n"
              f"  start-up {mine['start-up (to the first AWS call)']['median_s']:.2f} s + a chain of {len(floor['chain'])} "
              f"dependent calls x {latency_ms:g} ms = {rows['chain_floor_s']:.2f} s:")
        for service, op, what in floor["chain"]:
            print(f"    {service} {op}  ({what})")
        print(f"  and AWS's documented rates: {floor['rate_calls']} calls of budget {floor['rate_budget']} need "
              f"{floor['rate_s']:.2f} s at its rate, after start-up and the {floor['rate_calls_before']} calls they wait "
              f"for, the last answered a round trip later: {rows['rate_floor_s']:.2f} s")
    return doc
