"""What a run imports before its first AWS call (issue 24): only what it needs. boto3 (which imports
s3transfer), rich when the output is not a terminal, the walkthrough, the export and the local AWS's modules
cost a user's every run start-up time and do nothing for it."""
import json
import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, os, sys
from crudstack import aws

def first_call(self):   # the first AWS call of any run: say what is imported by then, and stop
    print(json.dumps(sorted(sys.modules)), flush=True)
    os._exit(0)

aws.Aws.caller_identity = first_call
from crudstack.cli import {main}
{main}({argv!r})
"""

UNNEEDED = ("boto3", "s3transfer", "rich", "crudstack.walkthrough", "crudstack.export", "crudstack.local", "moto")


def imported_at_first_call(main: str, argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(main=main, argv=argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def unneeded(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == u or m.startswith(u + ".") for u in UNNEEDED)]


def test_a_provision_on_aws_into_a_pipe_imports_nothing_it_does_not_need_before_its_first_call():
    modules = imported_at_first_call("provision_main", ["--target", "aws", "--plan"])
    assert "botocore.client" in modules   # the probe did reach the first call
    assert unneeded(modules) == []


def test_a_teardown_on_aws_into_a_pipe_imports_nothing_it_does_not_need_before_its_first_call():
    modules = imported_at_first_call("teardown_main", ["--target", "aws", "--yes", "--plan"])
    assert "botocore.client" in modules
    assert unneeded(modules) == []


def test_the_commands_end_without_the_interpreter_s_teardown_yet_with_all_their_output_and_their_exit_code(tmp_path):
    """provision.py and teardown.py end with os._exit (crudstack.cli.exit_now): what they printed into a pipe
    still arrives whole, and the exit code is the command's."""
    policy = subprocess.run([sys.executable, str(ROOT / "provision.py"), "--deployer-policy"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert policy.returncode == 0, policy.stderr
    assert json.loads(policy.stdout)["Statement"]
    missing = subprocess.run([sys.executable, str(ROOT / "teardown.py"), "--config", str(tmp_path / "none.yaml"), "--yes"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "none.yaml" in missing.stderr
