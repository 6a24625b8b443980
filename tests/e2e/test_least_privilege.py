"""Issue 13's acceptance, on a stack built by `python provision.py` on the local AWS: the functions run
with their role's permissions and nothing more, a policy drift breaks exactly what it removed (and
says so), and provision.py repairs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
import yaml

from crudstack.config import ROOT
from tests.e2e.conftest import make_stack, provisioned


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with provisioned(make_stack(tmp_path_factory.mktemp("least-privilege"))) as stack:
        yield stack


def role_name(stack) -> str:
    return stack.name(yaml.safe_load(stack.config_path.read_text())["role"]["name"])


def test_a_removed_permission_fails_its_route_names_the_denial_and_provision_repairs_it(stack):
    items = f"{stack.invoke_url}/items"
    created = requests.post(items, json={"name": "Widget"}, timeout=30)
    assert created.status_code == 201, created.text
    item_id = created.json()["item"]["id"]

    # By hand, as someone editing the role in the console: the inline policy without dynamodb:DeleteItem.
    iam = stack.client("iam")
    policy_name = stack.name("items-access")
    document = iam.get_role_policy(RoleName=role_name(stack), PolicyName=policy_name)["PolicyDocument"]
    for statement in document["Statement"]:
        if isinstance(statement["Action"], list) and "dynamodb:DeleteItem" in statement["Action"]:
            statement["Action"].remove("dynamodb:DeleteItem")
    iam.put_role_policy(RoleName=role_name(stack), PolicyName=policy_name, PolicyDocument=json.dumps(document))

    denied = requests.delete(f"{items}/{item_id}", timeout=30)
    assert denied.status_code == 500, denied.text                       # the handler's own 500, as on AWS
    assert requests.get(f"{items}/{item_id}", timeout=30).status_code == 200  # nothing was deleted

    shown = subprocess.run([sys.executable, "-m", "crudstack.local", "denials", "--config", str(stack.config_path)],
                           cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    table_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack.name('ItemsTable')}"
    function = stack.name("DeleteItemFunction")
    assert f"assumed-role/{role_name(stack)}/{function}" in shown.stdout
    assert f"action:   dynamodb:DeleteItem\n    resource: {table_arn}" in shown.stdout
    assert '"Action":"dynamodb:DeleteItem"' in shown.stdout

    repaired = stack.provision()
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert policy_name in repaired.stdout

    deleted = requests.delete(f"{items}/{item_id}", timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(f"{items}/{item_id}", timeout=30).status_code == 404
