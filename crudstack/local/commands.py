"""`python -m crudstack.local COMMAND`: look after the embedded local AWS of a config.yaml.

    outbox [--show N | --last] [--json]   the messages SNS delivered to e-mail (and SMS) subscriptions
    status [--json]                       running or not, where its state is, what its last start recovered
    wipe [--yes]                          stop it and delete its saved state and outbox, after confirmation
    denials [--json]                      the calls a Lambda role's policies did not allow, newest last
    credentials                           the local AWS's own credentials, as shell lines for the AWS CLI

Each takes --config FILE (default: config.yaml) or --state-dir DIR. Exit codes: 0 done, 2 bad
arguments or config (or a wipe not confirmed when stdin is not a terminal).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import json
import shutil
import sys
from pathlib import Path

from crudstack.config import ROOT, load_config
from crudstack.errors import ConfigError
from crudstack.local import daemon
from crudstack.local.iam.denials import DENIALS_NAME, read_denials
from crudstack.local.sns.outbox import OUTBOX_DIR, Outbox
from crudstack.local.state.durable import DATA_DIR


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir:
        return Path(args.state_dir).resolve()
    return load_config(args.config).state_dir


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _utc(date: str) -> str:
    try:
        return email.utils.parsedate_to_datetime(date).astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return date


def outbox(args: argparse.Namespace, state_dir: Path) -> int:
    box = Outbox(state_dir / OUTBOX_DIR)
    messages = box.messages()
    if args.json:
        print(json.dumps([m.as_dict() for m in messages], indent=2))
        return 0
    if not messages:
        print(f"The outbox is empty ({_shown(box.folder)}). Messages published to an SNS topic with an e-mail "
              f"subscription land here; set monitoring.alert_email in config.yaml to get the alarms'.")
        return 0
    chosen = len(messages) if args.last else args.show
    if chosen is not None:
        if not 1 <= chosen <= len(messages):
            print(f"error: --show {chosen}: the outbox holds messages 1 to {len(messages)}", file=sys.stderr)
            return 2
        message = messages[chosen - 1]
        print(f"File:    {_shown(message.path)}\nDate:    {message.date}\nTo:      {message.to}\n"
              f"Subject: {message.subject}\n\n{message.body}")
        return 0
    print(f"Outbox {_shown(box.folder)}: {len(messages)} message{'s' if len(messages) != 1 else ''}")
    width = len(str(len(messages)))
    for number, message in enumerate(messages, 1):
        print(f"  {number:>{width}}  {_utc(message.date)}  {message.to}  {message.subject}")
    print("Read one with --show N (--last for the newest); each is an .eml file, readable as text.")
    return 0


def status(args: argparse.Namespace, state_dir: Path) -> int:
    running = daemon.status(state_dir)
    try:
        recovery = json.loads((state_dir / daemon.RECOVERY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recovery = None
    data = state_dir / DATA_DIR
    saved = sorted(p.name for p in data.iterdir()) if data.is_dir() else []
    if args.json:
        print(json.dumps({"state_dir": str(state_dir), "running": running, "saved_state": saved,
                          "last_recovery": recovery}, indent=2))
        return 0
    if running:
        print(f"The local AWS is running: {running['endpoint']} (pid {running['pid']})")
    else:
        print("The local AWS is not running (python provision.py starts it).")
    print(f"Saved state: {_shown(data)} ({len(saved)} files)" if saved else "Saved state: none yet")
    if recovery:
        print(f"Last start: {recovery.get('summary')}")
        for problem in recovery.get("unreadable_snapshots", []) + recovery.get("dropped", []) + recovery.get("diverged", []):
            print(f"  - {problem}")
    return 0


def wipe(args: argparse.Namespace, state_dir: Path) -> int:
    targets = [p for p in (state_dir / DATA_DIR, state_dir / OUTBOX_DIR, state_dir / daemon.RECOVERY_NAME,
                           state_dir / DENIALS_NAME) if p.exists()]
    running = daemon.status(state_dir)
    if not targets and not running:
        print(f"Nothing to wipe: the local AWS in {_shown(state_dir)} has no saved state.")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: wipe deletes every local table, item, function, API and alarm; "
                  "pass --yes to confirm when not running in a terminal", file=sys.stderr)
            return 2
        what = "stop the local AWS and delete" if running else "delete"
        answer = input(f"This will {what} everything it holds (tables and items, functions, APIs, alarms, "
                       f"logs and metrics) and its outbox, in {_shown(state_dir)}. It cannot be undone. "
                       f"Wipe? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 0
    if running:
        daemon.stop(state_dir)
        print(f"Stopped the local AWS (pid {running['pid']}).")
    for path in targets:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        print(f"Deleted {_shown(path)}")
    print("The local AWS will start empty next time (python provision.py builds the stack again).")
    return 0


def denials(args: argparse.Namespace, state_dir: Path) -> int:
    found = read_denials(state_dir)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print(f"No denials: no Lambda function was refused a call by its role's policies "
              f"({_shown(state_dir / DENIALS_NAME)}).")
        return 0
    print(f"{len(found)} call{'s' if len(found) != 1 else ''} refused by the role's policies (newest last):")
    for entry in found:
        print(f"\n  {entry.get('time')}  {entry.get('principal')}\n"
              f"    action:   {entry.get('action')}\n    resource: {entry.get('resource')}\n"
              f"    why:      {entry.get('reason')}" + (f" ({entry['denied_by']})" if entry.get("denied_by") else ""))
        if entry.get("denied_by"):
            print("    fix:      remove or narrow that Deny statement")
        else:
            print(f"    would allow it: {json.dumps(entry.get('would_allow'), separators=(',', ':'))}")
        for statement in entry.get("conditions_not_evaluated") or []:
            print(f"    note:     {statement} has a Condition, which the local AWS does not evaluate")
    print("\nWith crudstack's own role, `python provision.py` puts its policy back.")
    return 0


def credentials(args: argparse.Namespace, state_dir: Path) -> int:
    """`eval "$(python -m crudstack.local credentials)"` lets the AWS CLI and SDKs call the local AWS,
    which accepts no made-up keys (crudstack/local/iam/credentials.py)."""
    from crudstack.local.iam.credentials import local_credentials
    from crudstack.local.state.exceptions import StateUnreadable

    try:
        found = local_credentials(state_dir)
    except StateUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, value in found.for_environment().items():
        print(f"export {name}={value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crudstack.local", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--config", default=str(ROOT / "config.yaml"), help="settings file (default: config.yaml)")
    where.add_argument("--state-dir", help="the local AWS's folder, instead of config.yaml's local.state_dir")
    commands = parser.add_subparsers(dest="command", required=True)
    box = commands.add_parser("outbox", parents=[common], help="list the messages SNS delivered to e-mail subscriptions")
    which = box.add_mutually_exclusive_group()
    which.add_argument("--show", type=int, metavar="N", help="print message N in full")
    which.add_argument("--last", action="store_true", help="print the newest message in full")
    box.add_argument("--json", action="store_true", help="every message (with its body) as JSON")
    state = commands.add_parser("status", parents=[common], help="is it running, and what did its last start recover")
    state.add_argument("--json", action="store_true")
    erase = commands.add_parser("wipe", parents=[common], help="stop it and delete its saved state and outbox")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    refused = commands.add_parser("denials", parents=[common],
                                  help="the calls Lambda functions made that their role's policies did not allow")
    refused.add_argument("--json", action="store_true", help="every denial as JSON")
    commands.add_parser("credentials", parents=[common],
                        help="print the local AWS's own credentials as export lines (eval them for the AWS CLI)")
    args = parser.parse_args(argv)
    try:
        state_dir = _state_dir(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return {"outbox": outbox, "status": status, "wipe": wipe, "denials": denials,
            "credentials": credentials}[args.command](args, state_dir)
