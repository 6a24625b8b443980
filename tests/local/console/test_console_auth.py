"""The console and api.auth: the stack answer (/_console/api/stack) says who may call the API, and with
api_key hands the page the key its writes through the items API send as x-api-key: an enabled key in a
usage plan on the stack's stage, read with the local AWS's own API Gateway API."""

from __future__ import annotations

import os

import pytest

from tests.local.console.test_console import api

TAGS = {"managed-by": "crudstack"}
UNTAGGED: dict = {}


def make_api(server, stack: str, *, authorization: str = "NONE", key_required: bool = False) -> str:
    """A REST API of `stack` (tagged as provision tags it) with GET and OPTIONS on /items, deployed to prod."""
    apigateway = server.client("apigateway")
    api_id = apigateway.create_rest_api(name=f"{stack}-ItemsApi", tags={**TAGS, "crudstack-stack": stack})["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    items = apigateway.create_resource(restApiId=api_id, parentId=root, pathPart="items")["id"]
    apigateway.put_method(restApiId=api_id, resourceId=items, httpMethod="GET", authorizationType=authorization,
                          apiKeyRequired=key_required)
    apigateway.put_method(restApiId=api_id, resourceId=items, httpMethod="OPTIONS", authorizationType="NONE")
    for method in ("GET", "OPTIONS"):
        apigateway.put_integration(restApiId=api_id, resourceId=items, httpMethod=method, type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="prod")
    return api_id


def make_key(server, stack: str, name: str, api_id: str, stage: str = "prod", enabled: bool = True,
             tags: dict | None = None) -> str:
    """A usage plan on api_id's stage holding one API key; the key's value."""
    apigateway = server.client("apigateway")
    key = apigateway.create_api_key(name=name, enabled=enabled,
                                    tags=({**TAGS, "crudstack-stack": stack} if tags is None else tags))
    plan = apigateway.create_usage_plan(name=f"{name}-plan", apiStages=[{"apiId": api_id, "stage": stage}],
                                        throttle={"rateLimit": 1.0, "burstLimit": 2}, quota={"limit": 3, "period": "DAY"})
    apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return key["value"]


def auth_of(server, stack: str) -> dict:
    status, body = api(server, f"stack?region=us-east-1&stack={stack}")
    assert status == 200, body
    return body


def test_with_api_key_the_stack_answer_holds_the_value_of_the_key_in_the_stages_usage_plan(server):
    api_id = make_api(server, "keyed", key_required=True)
    value = make_key(server, "keyed", "keyed-ItemsApi-key", api_id)

    body = auth_of(server, "keyed")

    assert body["auth"] == {"mode": "api_key", "api_key": value, "api_key_name": "keyed-ItemsApi-key"}
    step5 = {(r["kind"], r["name"]): r for r in body["steps"][4]["resources"]}
    assert step5[("usage plan", "keyed-ItemsApi-key-plan")]["detail"] == "throttle 1.0/s, burst 2; quota 3 a day"
    assert step5[("API key", "keyed-ItemsApi-key")]["state"] == "enabled"
    assert "sending the API key as x-api-key" in body["steps"][5]["resources"][0]["detail"]


def test_a_disabled_key_or_one_on_another_stage_is_not_handed_to_the_page(server):
    api_id = make_api(server, "nokey", key_required=True)
    make_key(server, "nokey", "nokey-disabled", api_id, enabled=False)
    make_key(server, "nokey", "nokey-other-stage", api_id, stage="test")

    body = auth_of(server, "nokey")

    assert body["auth"] == {"mode": "api_key", "api_key": None, "api_key_name": None}
    step5 = {(r["kind"], r["name"]): r["state"] for r in body["steps"][4]["resources"]}
    assert step5[("API key", "nokey-disabled")] == "disabled"
    assert ("API key", "nokey-other-stage") not in step5


def test_the_stacks_own_key_is_preferred_to_another_key_in_a_plan_on_its_stage(server):
    api_id = make_api(server, "mixed", key_required=True)
    make_key(server, "mixed", "aaa-someone-elses", api_id, tags=UNTAGGED)
    ours = make_key(server, "mixed", "mixed-ItemsApi-key", api_id)

    assert auth_of(server, "mixed")["auth"]["api_key"] == ours


@pytest.mark.parametrize("authorization, key_required, mode", [("AWS_IAM", False, "iam"), ("NONE", False, "none")])
def test_with_iam_or_none_the_stack_answer_names_the_mode_and_holds_no_key(server, authorization, key_required, mode):
    stack = f"open-{mode}"
    make_api(server, stack, authorization=authorization, key_required=key_required)

    body = auth_of(server, stack)

    assert body["auth"] == {"mode": mode, "api_key": None, "api_key_name": None}
    assert not [r for r in body["steps"][4]["resources"] if r["kind"] in ("usage plan", "API key")]


SYSTEM_PYTHON = "/usr/bin/python3"
_CALL = ("import sys, urllib.request, urllib.error\n"
         "request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode() or None,\n"
         "                                 headers={'Origin': sys.argv[3]})\n"
         "try:\n"
         "    print(urllib.request.urlopen(request, timeout=10).status)\n"
         "except urllib.error.HTTPError as exc:\n"
         "    print(exc.code)\n")


def _console_status_as(uid: int, url: str, body: str, origin: str) -> int:
    import subprocess

    done = subprocess.run([SYSTEM_PYTHON, "-c", _CALL, url, body, origin], user=uid, group=uid, extra_groups=[],
                          capture_output=True, text=True, timeout=30, cwd="/", check=False)
    return int(done.stdout.strip() or f"0{done.stderr}")


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                    reason="workers run as sandbox users only when the local AWS runs as root")
def test_a_lambda_worker_cannot_use_the_console_as_the_root_users_proxy(server):
    # The console signs with the local AWS's own credentials (the root user) and served any loopback client
    # sending a matching Origin: a handler running as its sandbox user read every table and log and
    # invoked any function with any event, whatever its role allowed.
    from crudstack.local.awslambda.process import SandboxUsers

    origin = server.endpoint
    sandbox = SandboxUsers.FIRST + 7
    for path, body in (("/_console/api/outbox", ""), ("/_console/api/stacks", ""),
                       ("/_console/api/invoke?region=us-east-1&function=any", "{}")):
        assert _console_status_as(sandbox, server.endpoint + path, body, origin) == 403, path
    assert _console_status_as(0, server.endpoint + "/_console/api/outbox", "", origin) == 200
