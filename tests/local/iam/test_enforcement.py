"""Least privilege, enforced by the local AWS over real HTTP: the real server and Lambda runtime in a
subprocess; handlers call STS and DynamoDB with the credentials their worker was given."""

from __future__ import annotations

import json
import os
import signal
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from crudstack.local import commands
from tests.support.local_server import ACCOUNT, REGION, function_zip, start_server

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})

# Tries each DynamoDB call named in the event and says what came back; and who it runs as.
PROBE = '''import os
import boto3
sts = boto3.client("sts")
dynamodb = boto3.client("dynamodb")

def handler(event, context):
    out = {"arn": sts.get_caller_identity()["Arn"], "key": os.environ["AWS_ACCESS_KEY_ID"],
           "secret": os.environ["AWS_SECRET_ACCESS_KEY"], "token": os.environ["AWS_SESSION_TOKEN"]}
    for call in event.get("calls", []):
        try:
            key = {"Item" if call == "put_item" else "Key": {"id": {"S": "1"}}}
            getattr(dynamodb, call)(TableName=event["table"], **key)
            out[call] = "ok"
        except Exception as exc:
            error = exc.response["Error"]
            out[call] = {"code": error["Code"], "message": error["Message"],
                         "status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}
    return out
'''

# Makes one call of any service, as the event says, and reports what came back.
CALL = '''import boto3

def handler(event, context):
    try:
        getattr(boto3.client(event["service"]), event["operation"])(**event["params"])
        return {"ok": True}
    except Exception as exc:
        return {"code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"],
                "status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("iam-local-aws"), module="crudstack.local.server")
    yield running
    running.stop()


class Setup:
    def __init__(self, server):
        self.server = server
        self.iam, self.lam, self.dynamodb = server.client("iam"), server.client("lambda"), server.client("dynamodb")
        self.table = f"t-{uuid.uuid4().hex[:6]}"
        self.table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.table}"
        self.dynamodb.create_table(TableName=self.table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                   BillingMode="PAY_PER_REQUEST")

    def role(self, *statement_list: dict) -> tuple[str, str]:
        name = f"r-{uuid.uuid4().hex[:6]}"
        arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        self.policy(name, *statement_list)
        return name, arn

    def policy(self, role_name: str, *statement_list: dict) -> None:
        self.iam.put_role_policy(RoleName=role_name, PolicyName="access", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": list(statement_list)}))

    def function(self, role_arn: str, source: str = PROBE) -> str:
        name = f"f-{uuid.uuid4().hex[:6]}"
        self.lam.create_function(FunctionName=name, Runtime="python3.12", Role=role_arn, Handler="handler.handler",
                                 Code={"ZipFile": function_zip(source)}, Timeout=30)
        return name

    def call(self, function: str, service: str, operation: str, **params) -> dict:
        answer = self.lam.invoke(FunctionName=function, Payload=json.dumps(
            {"service": service, "operation": operation, "params": params}))
        return json.loads(answer["Payload"].read())

    def probe(self, function: str, *calls: str) -> dict:
        answer = self.lam.invoke(FunctionName=function, Payload=json.dumps({"table": self.table, "calls": calls}))
        payload = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer, payload
        return payload

    def allow(self, *actions: str) -> dict:
        return {"Effect": "Allow", "Action": list(actions), "Resource": self.table_arn}


@pytest.fixture
def setup(server):
    return Setup(server)


def test_a_worker_runs_as_its_functions_role_session(setup):
    role_name, role_arn = setup.role(setup.allow("dynamodb:GetItem"))
    function = setup.function(role_arn)
    found = setup.probe(function)
    assert found["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{function}"
    assert found["key"].startswith("ASIA")


def test_what_the_role_allows_works_and_the_rest_is_access_denied_as_on_aws(setup):
    _, role_arn = setup.role(setup.allow("dynamodb:GetItem"))
    found = setup.probe(setup.function(role_arn), "get_item", "delete_item")
    assert found["get_item"] == "ok"
    denied = found["delete_item"]
    assert (denied["code"], denied["status"]) == ("AccessDeniedException", 400)
    assert denied["message"] == (f"User: {found['arn']} is not authorized to perform: dynamodb:DeleteItem on resource: "
                                 f"{setup.table_arn} because no identity-based policy allows the dynamodb:DeleteItem action")


def test_an_explicit_deny_wins_over_an_allow(setup):
    _, role_arn = setup.role({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
                             {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": setup.table_arn})
    found = setup.probe(setup.function(role_arn), "get_item", "delete_item")
    assert found["get_item"] == "ok"
    assert found["delete_item"]["code"] == "AccessDeniedException"
    assert found["delete_item"]["message"].endswith("with an explicit deny in an identity-based policy")


def test_a_policy_change_is_seen_by_the_next_call_of_a_warm_worker(setup):
    role_name, role_arn = setup.role(setup.allow("dynamodb:GetItem"))
    function = setup.function(role_arn)
    before = setup.probe(function, "delete_item")
    assert before["delete_item"]["code"] == "AccessDeniedException"  # and that decision is now cached
    setup.policy(role_name, setup.allow("dynamodb:GetItem", "dynamodb:DeleteItem"))
    after = setup.probe(function, "delete_item")
    assert after["key"] == before["key"]  # the same session: only the policy changed
    assert after["delete_item"] == "ok"


def test_a_new_role_gives_the_function_new_workers_with_its_session(setup):
    _, first_arn = setup.role(setup.allow("dynamodb:GetItem"))
    second_name, second_arn = setup.role(setup.allow("dynamodb:GetItem"))
    function = setup.function(first_arn)
    setup.probe(function)
    setup.lam.update_function_configuration(FunctionName=function, Role=second_arn)
    assert setup.probe(function)["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{second_name}/{function}"


def test_other_services_refuse_in_their_own_wire_format(setup):
    topic = setup.server.client("sns").create_topic(Name=f"t-{uuid.uuid4().hex[:6]}")["TopicArn"]
    target = setup.function(setup.role(setup.allow("dynamodb:GetItem"))[1])
    role_name, role_arn = setup.role({"Effect": "Allow", "Action": "sns:Publish", "Resource": topic})
    caller = setup.function(role_arn, CALL)
    target_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{target}"

    invoked = setup.call(caller, "lambda", "invoke", FunctionName=target, Payload="{}")  # REST JSON
    assert (invoked["code"], invoked["status"]) == ("AccessDeniedException", 403)
    assert f"perform: lambda:InvokeFunction on resource: {target_arn}" in invoked["message"]
    published = setup.call(caller, "sns", "publish", TopicArn=topic, Message="hello")
    assert published == {"ok": True}
    other_topic = topic + "-other"
    refused = setup.call(caller, "sns", "publish", TopicArn=other_topic, Message="hello")  # query XML
    assert (refused["code"], refused["status"]) == ("AuthorizationError", 403)
    logs = setup.call(caller, "logs", "create_log_group", logGroupName="/not/mine")  # JSON 1.1
    assert (logs["code"], logs["status"]) == ("AccessDeniedException", 400)

    setup.policy(role_name, {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": target_arn})
    assert setup.call(caller, "lambda", "invoke", FunctionName=target, Payload="{}") == {"ok": True}


def test_the_deployers_credentials_keep_full_access(setup):
    setup.role({"Effect": "Deny", "Action": "*", "Resource": "*"})  # binds its sessions only, not this caller
    setup.dynamodb.put_item(TableName=setup.table, Item={"id": {"S": "1"}})
    assert setup.dynamodb.get_item(TableName=setup.table, Key={"id": {"S": "1"}}, ConsistentRead=True)["Item"] == {
        "id": {"S": "1"}}
    setup.dynamodb.delete_item(TableName=setup.table, Key={"id": {"S": "1"}})
    assert "Item" not in setup.dynamodb.get_item(TableName=setup.table, Key={"id": {"S": "1"}}, ConsistentRead=True)


def test_each_denial_is_logged_and_listed_by_the_denials_command(setup, server, capsys):
    _, role_arn = setup.role(setup.allow("dynamodb:GetItem"))
    function = setup.function(role_arn)
    setup.probe(function, "put_item")
    principal = setup.probe(function, "update_item")["arn"]
    would_allow = json.dumps({"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": setup.table_arn},
                             separators=(",", ":"))
    assert (f"access denied: {principal} may not dynamodb:UpdateItem on {setup.table_arn} "
            f"(no identity-based policy allows it); add to the role's policy: {would_allow}") in server.log

    assert commands.main(["denials", "--state-dir", str(server.state_dir)]) == 0
    shown = capsys.readouterr().out
    assert f"action:   dynamodb:UpdateItem\n    resource: {setup.table_arn}" in shown
    assert f"would allow it: {would_allow}" in shown
    assert shown.index("dynamodb:PutItem") < shown.index("dynamodb:UpdateItem")  # newest last

    assert commands.main(["denials", "--json", "--state-dir", str(server.state_dir)]) == 0
    newest = json.loads(capsys.readouterr().out)[-1]
    assert (newest["principal"], newest["action"], newest["resource"]) == (principal, "dynamodb:UpdateItem",
                                                                           setup.table_arn)
    assert newest["would_allow"] == json.loads(would_allow)


def test_the_denials_command_says_when_there_are_none(tmp_path, capsys):
    assert commands.main(["denials", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("No denials")


def test_role_sessions_are_journaled_so_a_crash_keeps_them_and_their_limits(tmp_path):
    first = start_server(tmp_path / "state", module="crudstack.local.server")
    try:
        setup = Setup(first)
        _, role_arn = setup.role(setup.allow("dynamodb:GetItem"))
        session = setup.probe(setup.function(role_arn))
        # An acknowledged write is on disk with every record before it, the session's among them.
        setup.dynamodb.put_item(TableName=setup.table, Item={"id": {"S": "1"}})
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        (first.state_dir / "server.json").unlink(missing_ok=True)
    finally:
        first.stop()

    second = start_server(tmp_path / "state", module="crudstack.local.server")
    try:
        recovery = json.loads((second.state_dir / "recovery.json").read_text())
        assert not recovery.get("dropped") and not recovery.get("diverged"), recovery

        def client(service):
            return boto3.client(service, endpoint_url=second.endpoint, region_name=REGION,
                                aws_access_key_id=session["key"], aws_secret_access_key=session["secret"],
                                aws_session_token=session["token"])

        assert client("sts").get_caller_identity()["Arn"] == session["arn"]
        assert client("dynamodb").get_item(TableName=setup.table, Key={"id": {"S": "1"}})["Item"]
        with pytest.raises(ClientError) as denied:
            client("dynamodb").delete_item(TableName=setup.table, Key={"id": {"S": "1"}})
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    finally:
        second.stop()
