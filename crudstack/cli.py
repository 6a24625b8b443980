"""The two commands, provision and teardown: arguments, target, output, exit codes.

Exit codes: 0 done; 1 AWS failure; 2 bad config or arguments; 3 the local AWS could
not be started; 4 teardown kept something on purpose (a table holding items); 5 another
provision or teardown held the lock (crudstack/runlock.py) for all of the wait;
130 interrupted (Ctrl-C): run again to resume. An unexpected error (a bug) prints one line and
the path of a log file holding its traceback (last-error.log in the state dir).
With --plan (a dry run: read calls only): 0 nothing would change, 2 something would
(config errors exit 2 as well; their message on stderr tells them apart).

What a person sees is crudstack/ui.py's job; the files written after a provision are
crudstack/outputs.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import botocore.exceptions
import botocore.session

from crudstack.aws import Aws, Session, emulator_endpoint
from crudstack.chaos import FAULTS, Chaos, ChaosSpec, parse_spec
from crudstack.config import ROOT, Config, check_target, deploy_problems, load_config
from crudstack.errors import ConfigError, CrudStackError, InterruptedRun, LocalAwsError, NoCredentials
from crudstack.interrupt import GracefulStop
from crudstack.outputs import curl_examples, invoke_url, write_outputs
from crudstack.plan import Action, Context, Options
from crudstack.runlock import RunLock, acquire, lock_path
from crudstack.runner import StepResult, run
from crudstack.steps import STEPS
from crudstack.ui import Guide, RunReporter, Screen, plan_counts, plan_line, run_line

log = logging.getLogger("crudstack")


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", default=str(ROOT / "config.yaml"), help="settings file (default: config.yaml)")
    parser.add_argument("--target", choices=("local", "aws"), help="override config.yaml's target")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout (progress goes to stderr)")
    parser.add_argument("--plan", action="store_true",
                        help="dry run: read what exists and list what would change (+ create, ~ update, = unchanged, - delete); "
                             "no mutating AWS call; exit code 0 if nothing would change, 2 if something would")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", "-q", action="store_true", help="print only errors and the final result")
    loudness.add_argument("--verbose", "-v", action="store_true", help="also print each AWS call with its duration")
    chaos = parser.add_argument_group(
        "fault injection (development)",
        "Make a share of AWS calls fail the way AWS fails, to see the retries and resumes at work. "
        "Each option falls back to its environment variable: CRUDSTACK_CHAOS, CRUDSTACK_CHAOS_SEED, "
        "CRUDSTACK_CHAOS_FAULTS, CRUDSTACK_CHAOS_CALLS. See RELIABILITY.md.")
    chaos.add_argument("--chaos", metavar="RATE", help="share of AWS calls to fail, above 0 and at most 1 (e.g. 0.2)")
    chaos.add_argument("--chaos-seed", metavar="N", help="the same seed fails the same calls (default: a new seed, printed)")
    chaos.add_argument("--chaos-faults", metavar="LIST",
                       help=f"comma-separated faults to draw from: {', '.join(FAULTS)} "
                            "(default: all but access-denied, which is permanent)")
    chaos.add_argument("--chaos-calls", metavar="LIST", help="only these operations, e.g. CreateRole,create_function (default: all)")
    return parser


def chaos_spec(args) -> ChaosSpec | None:
    """The --chaos options (or their environment variables); checked before any AWS call."""
    return parse_spec(args.chaos, args.chaos_seed, args.chaos_faults, args.chaos_calls, environ=os.environ)


def attach_chaos(spec: ChaosSpec | None, aws: Aws) -> Chaos | None:
    if spec is None:
        return None
    print(f"warning: chaos: {spec.describe()}", file=sys.stderr, flush=True)
    return Chaos(spec).attach(aws)


def ignored_regions(region: str, environ=os.environ) -> list[str]:
    """The regions set outside config.yaml (environment, AWS profile) that differ from its region."""
    ignored = [f"{name}={environ[name]}" for name in ("AWS_REGION", "AWS_DEFAULT_REGION")
               if environ.get(name) and environ[name] != region]
    try:
        profile = botocore.session.Session()
        profile_region = profile.get_scoped_config().get("region")
    except botocore.exceptions.BotoCoreError:  # e.g. AWS_PROFILE names no profile: boto3 says so next
        return ignored
    if profile_region and profile_region != region:
        ignored.append(f"region {profile_region} of AWS profile '{profile.profile or 'default'}'")
    return ignored


def warn_of_ignored_regions(config: Config) -> None:
    """config.yaml's region is the one used (it is given to every client, which then ignores the
    environment and the profile); say so when those name another one, as other tools would obey them."""
    ignored = ignored_regions(config.region)
    if ignored:
        listed = ", ".join(ignored[:-1]) + (" and " if len(ignored) > 1 else "") + ignored[-1]
        print(f"warning: region: using {config.region} from config.yaml and ignoring {listed}; "
              f"to work in another region, change region: in config.yaml", file=sys.stderr, flush=True)


# The services a run calls: their clients are made while the first call (or the local AWS's start) is awaited.
RUN_SERVICES = ("sts", "dynamodb", "iam", "lambda", "apigateway", "logs", "cloudwatch", "sns")


def connect(config: Config, target: str) -> tuple[Aws, str | None]:
    """An Aws door for the target; for local, start (or reuse) the embedded local AWS first."""
    if target == "local":
        from crudstack.local.daemon import endpoint_of, ensure_running, status, stop, unreported_recovery_problems
        # The local AWS's own credentials (made with its state dir, 0600): the control plane accepts no
        # made-up keys, so that a Lambda handler cannot act as the deployer (crudstack/local/iam/credentials.py).
        from crudstack.local.iam.credentials import CREDENTIALS_NAME, local_credentials
        from crudstack.local.state.exceptions import StateUnreadable

        # A running local AWS knows only the credentials it started with: if credentials.json was deleted by
        # hand meanwhile, the ones made now would be refused (InvalidClientTokenId), so it is restarted (its
        # state is durable) and the new server takes the new file.
        stale = not (config.state_dir.resolve() / CREDENTIALS_NAME).exists() and status(config.state_dir) is not None
        try:
            credentials = local_credentials(config.state_dir)
        except StateUnreadable as exc:  # credentials.json damaged or unsafe: say what to do
            raise LocalAwsError(str(exc)) from None
        session = Session(region_name=config.region, **credentials.for_boto3())
        aws = Aws(region=config.region, endpoint_url=endpoint_of(config.local.port), session=session,
                  deadline_s=config.retry.deadline_s, max_attempts=config.retry.max_attempts)
        clients = aws.prepare(RUN_SERVICES)   # on the other core, while the local AWS starts
        if stale:
            log.warning("%s was deleted while the local AWS ran: restarting it so that it uses new credentials",
                        config.state_dir / CREDENTIALS_NAME)
            stop(config.state_dir)
        endpoint = ensure_running(config.local.port, config.state_dir, concurrency=config.local.lambda_concurrency)
        clients.join()
        problems = unreported_recovery_problems(config.state_dir)
        if problems:
            log.warning("the local AWS restarted from its saved state and had to leave out damaged data:\n%s\n"
                        "  Everything else was recovered. Details: %s",
                        "\n".join(f"  - {p}" for p in problems), _shown(config.state_dir / "server.log"))
        # AWS's documented rates are kept where something enforces them: AWS, or the local AWS playing one
        # (behaviour: realistic). moto throttles nothing, and pacing it cost a fresh local provision about
        # 5 s (17 alarms at CloudWatch's 3 PutMetricAlarm a second; BENCHMARKS.md, this round's last section).
        aws.paced = config.local.behaviour == "realistic"
        if config.local.behaviour == "realistic":
            from crudstack.realistic import local_model

            local_model(config.state_dir, config.local.behaviour_scale).attach(aws)
        return aws, endpoint
    warn_of_ignored_regions(config)
    # botocore resolves each client's endpoint as the AWS SDKs document (AWS_ENDPOINT_URL_<SERVICE>, then
    # AWS_ENDPOINT_URL, the profile's endpoint_url, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS over them all:
    # https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html); we name none ourselves.
    aws = Aws(region=config.region, deadline_s=config.retry.deadline_s, max_attempts=config.retry.max_attempts)
    aws.prepare_at_first_call = RUN_SERVICES   # while the caller identity's round trip is awaited
    # The API's URL follows API Gateway's endpoint: an emulator's own path form only where that is not AWS.
    return aws, emulator_endpoint(aws.client("apigateway").meta.endpoint_url)


def run_lock(config: Config, target: str, *, shared: bool = False) -> RunLock:
    """The lock that keeps one provision or teardown at a time on the local AWS (or on a stack in AWS), taken
    before the first AWS call (crudstack/runlock.py); `shared` for --plan, which only reads."""
    what = f"the local AWS of {_shown(config.state_dir)}" if target == "local" else f"stack '{config.stack}' in {config.region}"
    return acquire(lock_path(config.state_dir, target, config.stack, config.region), what=what, stack=config.stack,
                   shared=shared)


def summary(ctx: Context, results: list[StepResult], endpoint: str | None, seconds: float,
            timings: dict[int, float] | None = None) -> dict:
    """The --json document (and outputs/stack.json); `timings`: id(change) -> seconds its apply took."""
    timings = timings or {}
    url = invoke_url(ctx, endpoint)
    cfg = ctx.config
    auth = auth_summary(ctx)
    api_key = (auth.get("api_key") or {}).get("value")
    return {
        "stack": cfg.stack,
        "target": ctx.target,
        "region": ctx.region,
        "account_id": ctx.account_id,
        "endpoint_url": endpoint,
        "invoke_url": url,
        "auth": auth,
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
        "curl": curl_examples(ctx, url, api_key) if url else [],
        "steps": [{"number": r.step.number, "title": r.step.title, "outcome": r.outcome, "seconds": round(r.seconds, 3),
                   "changes": [{"kind": c.kind, "name": c.name, "action": c.action.value,
                                "diffs": {k: [str(o), str(n)] for k, (o, n) in c.diffs.items()},
                                **({"seconds": round(timings[id(c)], 3)} if id(c) in timings else {})} for c in r.changes]}
                  for r in results],
        "aws_calls": {"reads": ctx.aws.stats.reads, "writes": ctx.aws.stats.writes, "retries": ctx.aws.stats.retries},
        "seconds": round(seconds, 3),
    }


def auth_summary(ctx: Context) -> dict:
    """Who may call the API (api.auth), the stage's throttle, and with api_key the usage plan and the key, its
    value included: the outputs hand it to Postman, REST Client and curl (outputs/ is git-ignored)."""
    api, found = ctx.config.api, ctx.variables
    doc: dict = {"mode": api.auth, "throttle": {"rate_per_s": api.throttle.rate_per_s, "burst": api.throttle.burst}}
    if api.auth == "api_key":
        doc["usage_plan"] = {"name": ctx.config.usage_plan_name, "id": found.get("usage_plan_id")}
        doc["api_key"] = {"name": ctx.config.api_key_name, "id": found.get("api_key_id"), "value": found.get("api_key_value"),
                          "header": "x-api-key"}
    return doc


def write_error_log(config: Config | None, exc: BaseException) -> Path:
    """The traceback of an unexpected error, with what is needed to reproduce it, in the state dir
    (git-ignored; the same folder whatever the target). Falls back to the temp dir if that is not writable."""
    import platform
    import tempfile

    import boto3
    import botocore

    lines = [f"crudstack {Path(sys.argv[0]).name} failed unexpectedly at {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
             f"command: {' '.join([Path(sys.executable).name, *sys.argv])}",
             f"python {platform.python_version()}, boto3 {boto3.__version__}, botocore {botocore.__version__}, {platform.platform()}",
             f"config: stack {config.stack!r}, target {config.target!r}, region {config.region!r}" if config else "config: not loaded",
             "", "".join(traceback.format_exception(exc))]
    for folder in ([config.state_dir] if config else []) + [ROOT / ".local-aws", Path(tempfile.gettempdir())]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "last-error.log"
            path.write_text("\n".join(lines), encoding="utf-8")
            return path
        except OSError:
            continue
    raise OSError("no writable folder for the error log")


def _main(body: Callable[[dict], int]) -> int:
    """Run a command's body with the same user-facing error handling for both commands.

    `seen` is what the body learnt before it failed (its config), so an unexpected error's log
    goes to that config's state dir.
    """
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    seen: dict = {}
    try:
        with contextlib.ExitStack() as held:   # what the body holds until it ends, however: its run lock
            seen["held"] = held
            return body(seen)
    except InterruptedRun as exc:
        print(f"\n{exc}", file=sys.stderr)
        return exc.exit_code
    except CrudStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted. Nothing is lost: run the same command again to resume.", file=sys.stderr)
        return 130
    except botocore.exceptions.NoCredentialsError:
        # Outside a step (the run's first call, the caller identity, names every ARN): no step to name, nor a bug.
        missing = NoCredentials()
        print(f"error: {missing}", file=sys.stderr)
        return missing.exit_code
    except Exception as exc:  # unexpected: one line for the user, the traceback in a file
        where = "".join(f" {note}" for note in getattr(exc, "__notes__", []))
        try:
            shown = f"The full traceback is in {_shown(write_error_log(seen.get('config'), exc))}; please report it."
        except OSError:
            shown = "The traceback could not be written to a file; run again with --verbose and report what it prints."
        print(f"error: unexpected {type(exc).__name__}: {exc}{where}\n  {shown}", file=sys.stderr)
        return 1


def exit_now(code: int | None) -> None:
    """End the process with `code` once its output is out, without the interpreter's teardown of every module
    and object a run loaded (botocore's models, rich, pydantic's): a tenth of a second on a quiet machine,
    a second under load, spent after the user's command has done everything. Nothing a run leaves behind
    needs it: its files are written and closed, its thread pools joined, the local AWS runs on its own."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (| head): nothing more can be shown anyway
            pass
    os._exit(code or 0)


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to where they are, when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _reporter(args, screen: Screen, guide: Guide | None = None) -> RunReporter:
    return RunReporter(screen, plan=args.plan, quiet=args.quiet, verbose=args.verbose, guide=guide)


def _run(ctx: Context, reporter: RunReporter, *, teardown: bool, apply: bool, chaos: Chaos | None = None,
         runs: Callable[[], list[StepResult]] | None = None) -> list[StepResult]:
    reporter.attach(ctx.aws)
    try:
        with GracefulStop().attached(ctx.aws):
            return runs() if runs else run(ctx, reporter, teardown=teardown, apply=apply)
    finally:
        reporter.close()  # a live line must not outlive the run, even one stopped by an error
        if chaos is not None:
            print(chaos.summary_line(), file=sys.stderr, flush=True)


def _finish_plan(args, screen: Screen, results: list[StepResult], doc: dict, *, command: str) -> int:
    """The summary line, the --json document, and the exit code CI scripts read: 2 if anything would change."""
    counts = plan_counts(results)
    doc["plan"] = counts
    would_change = bool(counts["add"] or counts["change"] or counts["destroy"])
    if not args.quiet:
        screen.print()
    screen.print(plan_line(counts), style="bold")
    if would_change and not args.quiet:
        screen.print(f"Nothing was changed. Run python {command} without --plan to make these changes.")
    if args.json:
        print(json.dumps(doc, indent=2))
    return 2 if would_change else 0


def provision_main(argv: list[str] | None = None) -> int:
    parser = _parser("provision.py", "Build the serverless CRUD API stack, step by step as in the console tutorial.")
    # The command's modes: each its own function below; argparse refuses two of them at once.
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--walkthrough", action="store_true",
                       help="workshop mode: before each step, show the console instructions and the boto3 calls it "
                            "will make, and wait for Enter (goes on at once when stdin is not a terminal)")
    parser.add_argument("--outputs", metavar="DIR", default=str(ROOT / "outputs"),
                        help="folder for stack.json, postman_collection.json, endpoints.http and items.html (default: outputs/)")
    modes.add_argument("--deployer-policy", action="store_true",
                       help="print the least-privilege IAM policy needed to provision and tear down this config's stack "
                            "on AWS, and exit (no AWS call; see docs/real-account.md)")
    modes.add_argument("--export", nargs=2, metavar=("{sam,terraform}", "DIR"),
                       help="write this config's stack as a CloudFormation template (sam) or Terraform files into DIR, "
                            "with the functions' zips, and exit (no AWS call; see docs/export.md)")
    parser.add_argument("--force", action="store_true", help="with --export: write into DIR even if it is not empty")
    parser.add_argument("--adopt", action="store_true",
                        help="take over the stack you built by hand in the console (with names: tutorial in config.yaml): "
                             "find each resource, show what would be taken over, changed and left alone, then tag it as ours "
                             "and provision; with --plan, show that and stop (README, 'Adopt the stack you built by hand')")
    modes.add_argument("--watch", action="store_true",
                       help="after provisioning, keep watching the Lambda code and config.yaml, and deploy each save "
                            "(a handler: just its function's code; config.yaml: the whole provision); Ctrl-C stops")
    args = parser.parse_args(argv)
    _refuse_combinations(parser, args)

    def body(seen: dict) -> int:
        config = seen["config"] = load_config(args.config)
        if args.deployer_policy:
            return _deployer_policy(config)
        if args.export:
            return _export(args, config)
        return _provision(args, config, seen["held"])

    return _main(body)


def _refuse_combinations(parser: argparse.ArgumentParser, args) -> None:
    """What the modes' group cannot say: the options a mode makes no sense with, and why."""
    if args.export and args.export[0] not in ("sam", "terraform"):
        parser.error(f"--export: found {args.export[0]!r}, expected sam or terraform, e.g. --export sam exported/")
    if args.force and not args.export:
        parser.error("--force goes with --export (it lets the export write into a folder that is not empty)")
    if args.walkthrough and (args.plan or args.quiet):
        parser.error("--walkthrough shows every step and runs it: it cannot be combined with --plan or --quiet")
    refused = [flag for flag, given in (("--plan", args.plan), ("--json", args.json), ("--quiet", args.quiet),
                                        ("--adopt", args.adopt)) if given]
    if args.watch and refused:
        parser.error(f"--watch keeps provisioning each save and reports it line by line: it cannot be combined with "
                     f"{' or '.join(refused)}")


def _deployer_policy(config: Config) -> int:
    """--deployer-policy (crudstack/permissions.py): no AWS call."""
    from crudstack.permissions import deployer_policy

    print(json.dumps(deployer_policy(config), indent=2))
    return 0


def _export(args, config: Config) -> int:
    """--export (crudstack/export/): no AWS call."""
    from crudstack.export import deploy_commands, export

    problems = deploy_problems(config)   # what the exported stack could not do either
    if problems:
        raise ConfigError(problems, args.config)
    written = export(config, args.export[0], Path(args.export[1]), force=args.force)
    print(f"Wrote {len(written)} files (nothing was deployed):", *(f"  {_shown(p)}" for p in written),
          "To deploy them:", *(f"  {line}" for line in deploy_commands(args.export[0], _shown(Path(args.export[1])))), sep="\n")
    return 0


def _provision(args, config: Config, held) -> int:
    """Provision (or with --plan, plan; with --adopt, take over first), then --watch if asked."""
    spec = chaos_spec(args)
    target = args.target or config.target
    check_target(config, target, args.config)
    lock = held.enter_context(run_lock(config, target, shared=args.plan))
    screen = Screen(sys.stderr if args.json else sys.stdout)
    started = time.monotonic()
    aws, endpoint = connect(config, target)
    chaos = attach_chaos(spec, aws)
    ctx = Context(config=config, aws=aws, target=target)
    if not args.quiet:
        where = f"the local AWS at {endpoint}" if target == "local" else (f"AWS endpoint {endpoint}" if endpoint else "AWS")
        what = "Planning (read calls only, nothing is changed)" if args.plan else "Provisioning"
        screen.print(f"{what} stack '{config.stack}' in {where} ({aws.region})", style="bold")
    reporter = _reporter(args, screen, _walkthrough(args, screen, ctx, endpoint) if args.walkthrough else None)
    results = _run(ctx, reporter, teardown=False, apply=not args.plan, chaos=chaos,
                   runs=_adoption(args, screen, ctx, reporter) if args.adopt else None)
    doc = summary(ctx, results, endpoint, time.monotonic() - started, timings=reporter.timings)
    if chaos is not None:
        doc["chaos"] = chaos.summary()
    if args.plan:
        return _finish_plan(args, screen, results, doc, command="provision.py")
    _show_provisioned(args, screen, ctx, reporter, results, doc, endpoint)
    if args.watch:
        screen.print()
        lock.release()   # the watch takes it for each deploy, so a teardown can run between two saves
        return _watch(args, screen, ctx, target)
    return 0


def _walkthrough(args, screen: Screen, ctx: Context, endpoint: str | None) -> Guide:
    """--walkthrough (crudstack/walkthrough.py): the console's instructions and the calls, before each step."""
    return Guide(screen, ctx, stdin=sys.stdin, step_numbers=(["0"] if args.adopt else []) + [s.number for s in STEPS],
                 invoke_url=lambda: invoke_url(ctx, endpoint))


def _show_provisioned(args, screen: Screen, ctx: Context, reporter: RunReporter, results: list[StepResult], doc: dict,
                      endpoint: str | None) -> None:
    """After a provision: the outputs written, then the --json document or the lines a person reads."""
    written: list[Path] = []
    if doc["invoke_url"]:
        try:
            written = write_outputs(doc, Path(args.outputs))
        except OSError as exc:  # the stack is made; a folder we cannot write must not say otherwise
            log.warning("could not write the outputs to %s: %s", args.outputs, exc)
    if args.json:
        print(json.dumps(doc, indent=2))
    done = run_line(results, doc["seconds"], doc["aws_calls"]["reads"], doc["aws_calls"]["writes"])
    if args.quiet:
        if not args.json:
            screen.print(done)
            screen.print(f"Invoke URL: {doc['invoke_url']}")
        return
    screen.print()
    if reporter.wants_summary_table():
        screen.show(reporter.summary_table())
    screen.print(done, style="bold")
    screen.print(f"\nStep 6. Test the API. Invoke URL:\n  {doc['invoke_url']}\n", style="bold")
    for line in doc["curl"]:
        screen.print(f"  {line}")
    if written:
        screen.print(f"\nFor Postman, REST clients and scripts: {', '.join(_shown(p) for p in written)}")
    if ctx.target == "local" and endpoint:
        screen.print(f"Local console (items, logs, metrics, alarms, alert e-mails): {endpoint.rstrip('/')}/_console")


def _adoption(args, screen: Screen, ctx: Context, reporter: RunReporter) -> Callable[[], list[StepResult]]:
    """--adopt (crudstack/adopt.py): the whole plan is shown first, even with --quiet; then, without --plan, run."""
    from crudstack.adopt import run_adoption

    shown = reporter if args.plan else RunReporter(screen, plan=True, verbose=args.verbose)

    def planned(results: list[StepResult]) -> None:
        if not args.plan:
            screen.print(plan_line(plan_counts(results)), style="bold")
            screen.print("Taking over and applying the plan above.\n", style="bold")

    def runs() -> list[StepResult]:
        try:
            return run_adoption(ctx, shown, reporter, apply=not args.plan, on_planned=planned)
        finally:
            shown.close()

    return runs


def _watch(args, screen: Screen, ctx: Context, target: str) -> int:
    """--watch (crudstack/watch.py); a config.yaml save runs this whole provision again, quietly but for errors."""
    from crudstack.watch import Watch

    def provision_again(config: Config) -> Context:
        check_target(config, target, args.config)
        with run_lock(config, target):
            aws, endpoint = connect(config, target)
            again = Context(config=config, aws=aws, target=target)
            reporter = RunReporter(screen, quiet=True)
            reporter.attach(aws)
            try:
                results = run(again, reporter)   # no GracefulStop: the watch lets a deploy in flight finish
            finally:
                reporter.close()
        doc = summary(again, results, endpoint, 0.0, timings=reporter.timings)
        if doc["invoke_url"]:
            try:
                write_outputs(doc, Path(args.outputs))
            except OSError as exc:
                log.warning("could not write the outputs to %s: %s", args.outputs, exc)
        for result in results:
            for change in result.changes:
                if change.action.mutates:
                    screen.print(f"  {change.describe()}")
        return again

    return Watch(ctx, Path(args.config), provision_again, say=screen.print, lock=lambda config: run_lock(config, target)).run()


def _stack_left(aws: Aws) -> list[str]:
    """What of any crudstack stack, or any table at all, is still in the local AWS (a failed look: not empty)."""
    try:
        return _listed(aws)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        return [f"what could not be listed ({type(exc).__name__})"]


def _listed(aws: Aws) -> list[str]:
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

    def body(seen: dict) -> int:
        config = seen["config"] = load_config(args.config)
        spec = chaos_spec(args)
        target = args.target or config.target
        # Before the look at the local AWS: a provision or teardown in flight may be starting or stopping it.
        seen["held"].enter_context(run_lock(config, target, shared=args.plan))
        screen = Screen(sys.stderr if args.json else sys.stdout)
        if target == "local":
            from crudstack.local.daemon import status

            if status(config.state_dir) is None:
                screen.print("The local AWS is not running: there is no local stack to tear down.")
                doc = {"stack": config.stack, "target": target, "steps": [], "local_aws": "not running"}
                if args.plan:
                    return _finish_plan(args, screen, [], doc, command="teardown.py")
                if args.json:
                    print(json.dumps(doc))
                return 0
        if not args.yes and not args.plan:  # a plan deletes nothing: nothing to confirm
            if not sys.stdin.isatty():
                raise ConfigError(["--yes: teardown deletes the stack; pass --yes to confirm when not running in a terminal"], "arguments")
            answer = input(f"Delete every resource of stack '{config.stack}' ({target})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                screen.print("Nothing deleted.")
                return 0
        started = time.monotonic()
        aws, endpoint = connect(config, target)
        chaos = attach_chaos(spec, aws)
        if not args.quiet:
            where = f"the local AWS at {endpoint}" if target == "local" else (f"AWS endpoint {endpoint}" if endpoint else "AWS")
            what = "Planning the teardown (read calls only, nothing is deleted) of" if args.plan else "Tearing down"
            screen.print(f"{what} stack '{config.stack}' in {where} ({aws.region})", style="bold")
        ctx = Context(config=config, aws=aws, target=target,
                      options=Options(delete_data=args.delete_data, backup=args.backup, backup_dir=ROOT / "backups"))
        reporter = _reporter(args, screen)
        results = _run(ctx, reporter, teardown=True, apply=not args.plan, chaos=chaos)
        kept = [c for r in results for c in r.changes if c.action is Action.KEEP]
        doc = {"stack": config.stack, "target": target, "region": aws.region, "backup": ctx.backup_location,
               "steps": [{"number": r.step.number, "title": r.step.title, "outcome": r.outcome, "seconds": round(r.seconds, 3),
                          "changes": [{"kind": c.kind, "name": c.name, "action": c.action.value, "note": c.note,
                                       **({"seconds": round(reporter.timings[id(c)], 3)} if id(c) in reporter.timings else {})}
                                      for c in r.changes]}
                         for r in results],
               "aws_calls": {"reads": aws.stats.reads, "writes": aws.stats.writes, "retries": aws.stats.retries},
               "seconds": round(time.monotonic() - started, 3)}
        if chaos is not None:
            doc["chaos"] = chaos.summary()
        if args.plan:
            return _finish_plan(args, screen, results, doc, command="teardown.py")
        if not args.quiet and any(r.changes for r in results):
            screen.print()
            screen.show(reporter.summary_table())
        if ctx.backup_location:
            screen.print(f"Items saved to {ctx.backup_location}")
        if target == "local":
            doc["local_aws"] = "running"
            if not args.keep_running:
                left = _stack_left(aws)
                if left:
                    screen.print(f"The local AWS keeps running: it still holds {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}.")
                else:
                    from crudstack.local.daemon import stop

                    stop(config.state_dir)
                    doc["local_aws"] = "stopped"
                    screen.print("The local AWS held nothing else and was stopped.")
        if args.json:
            print(json.dumps(doc, indent=2))
        if kept:
            for change in kept:
                screen.print(f"Kept {change.kind} {change.name}: {change.note}", style="magenta")
            return 4
        if not any(r.changes for r in results):
            screen.print("Nothing to delete: the stack is already gone.")
        elif not args.quiet:
            screen.print(f"Done in {doc['seconds']:.1f} s ({aws.stats.reads} reads, {aws.stats.writes} writes).", style="bold")
        return 0

    return _main(body)
