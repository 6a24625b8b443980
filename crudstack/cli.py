"""The two commands, provision and teardown: arguments, target, output, exit codes.

Exit codes: 0 done; 1 AWS failure; 2 bad config or arguments; 3 the local AWS could
not be started; 4 teardown kept something on purpose (a table holding items);
130 interrupted (Ctrl-C): run again to resume.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import boto3

from crudstack.aws import Aws
from crudstack.config import ROOT, Config, load_config
from crudstack.errors import ConfigError, CrudStackError
from crudstack.plan import Action, Context, Options
from crudstack.runner import Reporter, StepResult, run
from crudstack.steps.api import find_our_api

log = logging.getLogger("crudstack")
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class TextReporter(Reporter):
    """Numbered like the tutorial: one line per step with its outcome and time, then its changes."""

    def __init__(self, stream, *, verb: str):
        self.stream = stream
        self.verb = verb

    def step_started(self, step) -> None:
        pass

    def step_finished(self, result: StepResult) -> None:
        step = result.step
        title = f"Step {step.number}  {step.title} "
        print(f"{title:.<46} {result.outcome:<14} {result.seconds:6.2f} s", file=self.stream, flush=True)
        for change in result.changes:
            if change.action is not Action.UNCHANGED or len(result.changes) == 1:
                print(f"        {change.describe()}", file=self.stream, flush=True)


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", default=str(ROOT / "config.yaml"), help="settings file (default: config.yaml)")
    parser.add_argument("--target", choices=("local", "aws"), help="override config.yaml's target")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout (progress goes to stderr)")
    return parser


def connect(config: Config, target: str) -> tuple[Aws, str | None]:
    """An Aws door for the target; for local, start (or reuse) the embedded local AWS first."""
    if target == "local":
        from crudstack.local.daemon import ensure_running

        endpoint = ensure_running(config.local.port, config.state_dir, concurrency=config.local.lambda_concurrency)
        session = boto3.session.Session(region_name=config.region, **FAKE_CREDENTIALS)
        return Aws(region=config.region, endpoint_url=endpoint, session=session,
                   deadline_s=config.retry.deadline_s, max_attempts=config.retry.max_attempts), endpoint
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None  # boto3 honours it too; we need it for the invoke URL
    return Aws(region=config.region, endpoint_url=endpoint, deadline_s=config.retry.deadline_s,
               max_attempts=config.retry.max_attempts), endpoint


def invoke_url(ctx: Context, endpoint: str | None) -> str | None:
    if not ctx.api_id:
        return None
    stage = ctx.config.api.stage
    if endpoint:  # the local AWS (and LocalStack-style endpoints) serve the API under this path
        return f"{endpoint.rstrip('/')}/restapis/{ctx.api_id}/{stage}/_user_request_"
    return f"https://{ctx.api_id}.execute-api.{ctx.region}.amazonaws.com/{stage}"


def curl_examples(ctx: Context, url: str) -> list[str]:
    examples = []
    for fn in sorted(ctx.config.lambda_.functions.values(), key=lambda f: (f.path.count("/"), ("POST", "GET", "PUT", "DELETE", "PATCH").index(f.method))):
        path = "/".join("<id>" if p.startswith("{") else p for p in fn.path.split("/"))
        method = "" if fn.method == "GET" else f"-X {fn.method} "
        body = ""
        if fn.method in ("POST", "PUT", "PATCH"):
            payload = {"name": "Widget", "description": "A test item"} if fn.method == "POST" else {"name": "Renamed widget"}
            body = f" -H 'Content-Type: application/json' -d '{json.dumps(payload)}'"
        examples.append(f"curl {method}'{url}{path}'{body}")
    return examples


def summary(ctx: Context, results: list[StepResult], endpoint: str | None, seconds: float) -> dict:
    url = invoke_url(ctx, endpoint)
    cfg = ctx.config
    return {
        "stack": cfg.stack,
        "target": ctx.target,
        "region": ctx.region,
        "account_id": ctx.account_id,
        "endpoint_url": endpoint,
        "invoke_url": url,
        "resources": {
            "table": {"name": cfg.table_name, "arn": ctx.table_arn},
            "role": {"name": cfg.role_name, "arn": ctx.role_arn},
            "functions": {cfg.function_name(b): {"arn": ctx.function_arns.get(b), "route": f.route} for b, f in cfg.lambda_.functions.items()},
            "rest_api": {"name": cfg.api_name, "id": ctx.api_id},
            "stage": {"name": cfg.api.stage, "deployment_id": ctx.deployment_id},
            "log_groups": ctx.log_groups,
            "topic": {"name": cfg.topic_name, "arn": ctx.topic_arn},
            "alarms": ctx.alarm_names,
        },
        "routes": [{"method": f.method, "path": f.path, "url": f"{url}{f.path}" if url else None, "function": cfg.function_name(b)}
                   for b, f in cfg.lambda_.functions.items()],
        "curl": curl_examples(ctx, url) if url else [],
        "steps": [{"number": r.step.number, "title": r.step.title, "outcome": r.outcome, "seconds": round(r.seconds, 3),
                   "changes": [{"kind": c.kind, "name": c.name, "action": c.action.value,
                                "diffs": {k: [str(o), str(n)] for k, (o, n) in c.diffs.items()}} for c in r.changes]}
                  for r in results],
        "aws_calls": {"reads": ctx.aws.stats.reads, "writes": ctx.aws.stats.writes, "retries": ctx.aws.stats.retries},
        "seconds": round(seconds, 3),
    }


def _error_log(config: Config | None) -> Path:
    folder = config.state_dir if config else ROOT / ".local-aws"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "last-error.log"


def _main(body) -> int:
    """Run a command's body with the same user-facing error handling for both commands."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    try:
        return body()
    except CrudStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted. Nothing is lost: run the same command again to resume.", file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: one line for the user, the traceback in a file
        path = _error_log(None)
        path.write_text(traceback.format_exc(), encoding="utf-8")
        print(f"error: unexpected {type(exc).__name__}: {exc}\n  The full traceback is in {path}; please report it.", file=sys.stderr)
        return 1


def provision_main(argv: list[str] | None = None) -> int:
    parser = _parser("provision.py", "Build the serverless CRUD API stack, step by step as in the console tutorial.")
    args = parser.parse_args(argv)

    def body() -> int:
        config = load_config(args.config)
        target = args.target or config.target
        out = sys.stderr if args.json else sys.stdout
        started = time.monotonic()
        aws, endpoint = connect(config, target)
        where = f"the local AWS at {endpoint}" if target == "local" else (f"AWS endpoint {endpoint}" if endpoint else "AWS")
        print(f"Provisioning stack '{config.stack}' in {where} ({aws.region})", file=out, flush=True)
        ctx = Context(config=config, aws=aws, target=target)
        results = run(ctx, TextReporter(out, verb="provision"))
        doc = summary(ctx, results, endpoint, time.monotonic() - started)
        changed = any(r.outcome != "unchanged" for r in results)
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(f"\n{'Done' if changed else 'Nothing to change: every step is unchanged'} "
                  f"in {doc['seconds']:.1f} s ({doc['aws_calls']['reads']} reads, {doc['aws_calls']['writes']} writes).", file=out)
            print(f"\nStep 6. Test the API. Invoke URL:\n  {doc['invoke_url']}\n", file=out)
            for line in doc["curl"]:
                print(f"  {line}", file=out)
        return 0

    return _main(body)


def _stack_left(aws: Aws) -> list[str]:
    """What of any crudstack stack, or any table at all, is still in the local AWS."""
    left = []
    ddb = aws.client("dynamodb")
    left += [f"table {t}" for t in aws.paginate(ddb, "list_tables", "TableNames")]
    lam = aws.client("lambda")
    left += [f"function {f['FunctionName']}" for f in aws.paginate(lam, "list_functions", "Functions")]
    apigw = aws.client("apigateway")
    left += [f"REST API {a['name']}" for a in aws.paginate(apigw, "get_rest_apis", "items")]
    return left


def teardown_main(argv: list[str] | None = None) -> int:
    parser = _parser("teardown.py", "Remove exactly what provision.py created for this stack, in reverse order.")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--delete-data", action="store_true", help="delete the table even if it still holds items")
    parser.add_argument("--backup", action="store_true", help="save the items first (AWS: on-demand backup; local: JSON file in backups/), then delete the table")
    parser.add_argument("--keep-running", action="store_true", help="(local) leave the local AWS running afterwards")
    args = parser.parse_args(argv)

    def body() -> int:
        config = load_config(args.config)
        target = args.target or config.target
        out = sys.stderr if args.json else sys.stdout
        if target == "local":
            from crudstack.local.daemon import status

            if status(config.state_dir) is None:
                print("The local AWS is not running: there is no local stack to tear down.", file=out)
                if args.json:
                    print(json.dumps({"stack": config.stack, "target": target, "steps": [], "local_aws": "not running"}))
                return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(["--yes: teardown deletes the stack; pass --yes to confirm when not running in a terminal"], "arguments")
            answer = input(f"Delete every resource of stack '{config.stack}' ({target})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing deleted.", file=out)
                return 0
        started = time.monotonic()
        aws, endpoint = connect(config, target)
        print(f"Tearing down stack '{config.stack}' in {'the local AWS at ' + endpoint if target == 'local' else 'AWS'} ({aws.region})", file=out, flush=True)
        ctx = Context(config=config, aws=aws, target=target,
                      options=Options(delete_data=args.delete_data, backup=args.backup, backup_dir=ROOT / "backups"))
        results = run(ctx, TextReporter(out, verb="teardown"), teardown=True)
        kept = [c for r in results for c in r.changes if c.action is Action.KEEP]
        doc = {"stack": config.stack, "target": target, "region": aws.region, "backup": ctx.backup_location,
               "steps": [{"number": r.step.number, "title": r.step.title, "outcome": r.outcome, "seconds": round(r.seconds, 3),
                          "changes": [{"kind": c.kind, "name": c.name, "action": c.action.value, "note": c.note} for c in r.changes]}
                         for r in results],
               "aws_calls": {"reads": aws.stats.reads, "writes": aws.stats.writes, "retries": aws.stats.retries}}
        if ctx.backup_location:
            print(f"Items saved to {ctx.backup_location}", file=out)
        if target == "local":
            doc["local_aws"] = "running"
            if not args.keep_running:
                left = _stack_left(aws)
                if left:
                    print(f"The local AWS keeps running: it still holds {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}.", file=out)
                else:
                    from crudstack.local.daemon import stop

                    stop(config.state_dir)
                    doc["local_aws"] = "stopped"
                    print("The local AWS held nothing else and was stopped.", file=out)
        if args.json:
            print(json.dumps(doc, indent=2))
        if kept:
            for change in kept:
                print(f"Kept {change.kind} {change.name}: {change.note}", file=out)
            return 4
        if not any(r.changes for r in results):
            print("Nothing to delete: the stack is already gone.", file=out)
        return 0

    return _main(body)
