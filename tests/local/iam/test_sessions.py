"""Role sessions for workers (crudstack/local/iam/sessions.py) and the access check on them
(crudstack/local/iam/models.py), in-process under moto's mock; the same over HTTP is test_enforcement.py."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import boto3
import pytest
from moto import mock_aws

from crudstack.local.awslambda.runtime import LambdaRuntime
from crudstack.local.iam.exceptions import AccessDenied, ExpiredToken, InvalidToken
from crudstack.local.iam.models import AccessCheck
from crudstack.local.iam.requests import signer
from crudstack.local.iam.sessions import REFRESH_MARGIN_SECONDS, SESSION_SECONDS, RoleSessions

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/items"


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def role():
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        arn = iam.create_role(RoleName="items-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        iam.put_role_policy(RoleName="items-role", PolicyName="items", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE}]}))
        yield arn


def request(session, operation: str, token: str | None = None) -> tuple[dict, bytes]:
    body = json.dumps({"TableName": "items", "Key": {"id": {"S": "1"}}}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "wsgi.input": io.BytesIO(body),
               "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{operation}",
               "HTTP_X_AMZ_SECURITY_TOKEN": token if token is not None else session.session_token,
               "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={session.access_key_id}/20260101/{REGION}/dynamodb/"
                                     f"aws4_request, SignedHeaders=host, Signature={'0' * 64}"}
    return environ, body


def test_a_session_is_the_role_assumed_under_the_function_name_and_reused(role):
    sessions = RoleSessions()
    session = sessions.for_function(ACCOUNT, REGION, role, "GetItemFunction")
    assert session.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/items-role/GetItemFunction"
    assert session.access_key_id.startswith("ASIA") and session.session_token
    assert sessions.for_function(ACCOUNT, REGION, role, "GetItemFunction") == session
    assert sessions.for_function(ACCOUNT, REGION, role, "DeleteItemFunction") != session


def test_a_session_near_its_expiry_is_replaced_by_a_new_one(role):
    clock = Clock()
    sessions = RoleSessions(clock=clock)
    first = sessions.for_function(ACCOUNT, REGION, role, "F")
    clock.now += SESSION_SECONDS - REFRESH_MARGIN_SECONDS - 1
    assert not sessions.expiring(first)
    clock.now += 2
    assert sessions.expiring(first)
    second = sessions.for_function(ACCOUNT, REGION, role, "F")
    assert second.access_key_id != first.access_key_id and not sessions.expiring(second)


def test_the_check_allows_what_the_role_allows_and_denies_the_rest_with_iams_message(role):
    session = RoleSessions().for_function(ACCOUNT, REGION, role, "F")
    check = AccessCheck()
    environ, body = request(session, "GetItem")
    assert check.check(environ, body, signer(environ)).action == "dynamodb:GetItem"
    environ, body = request(session, "DeleteItem")
    with pytest.raises(AccessDenied) as denied:
        check.check(environ, body, signer(environ))
    assert denied.value.message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/items-role/F is not authorized to perform: dynamodb:DeleteItem "
        f"on resource: {TABLE} because no identity-based policy allows the dynamodb:DeleteItem action")


def test_credentials_other_than_a_session_are_not_checked(role):
    environ, body = request(type("S", (), {"access_key_id": "ASIANOTASESSION0000", "session_token": "x"}), "DeleteItem")
    assert AccessCheck().check(environ, body, signer(environ)) is None


def test_an_expired_session_and_a_wrong_token_are_refused(role):
    session = RoleSessions().for_function(ACCOUNT, REGION, role, "F")
    later = dt.datetime.now(dt.timezone.utc).timestamp() + SESSION_SECONDS + 60
    environ, body = request(session, "GetItem")
    assert AccessCheck().check(environ, body, signer(environ)).action == "dynamodb:GetItem"
    environ, body = request(session, "GetItem")
    with pytest.raises(ExpiredToken):
        AccessCheck(clock=lambda: later).check(environ, body, signer(environ))
    environ, body = request(session, "GetItem", token="forged")
    with pytest.raises(InvalidToken):
        AccessCheck().check(environ, body, signer(environ))


def test_a_cached_decision_lasts_until_a_write_and_then_sees_the_new_policy(role):
    session = RoleSessions().for_function(ACCOUNT, REGION, role, "F")
    check = AccessCheck()
    check.decisions.enable()
    environ, body = request(session, "DeleteItem")
    with pytest.raises(AccessDenied):
        check.check(environ, body, signer(environ))
    boto3.client("iam", region_name=REGION).put_role_policy(
        RoleName="items-role", PolicyName="deletes", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:DeleteItem", "Resource": TABLE}]}))
    environ, body = request(session, "DeleteItem")
    with pytest.raises(AccessDenied):  # kept: nobody told this check of the write
        check.check(environ, body, signer(environ))
    check.decisions.changed()  # what the server does before an IAM write is answered
    environ, body = request(session, "DeleteItem")
    assert check.check(environ, body, signer(environ)).action == "dynamodb:DeleteItem"


def test_a_worker_whose_session_nears_expiry_is_replaced_by_one_with_fresh_credentials(role):
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "import os\ndef handler(event, context):\n"
                                   "    return {'key': os.environ['AWS_ACCESS_KEY_ID'], 'pid': os.getpid()}\n")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="who", Runtime="python3.11", Role=role, Handler="app.handler", Code={"ZipFile": code.getvalue()})
    clock = Clock()
    with LambdaRuntime(endpoint_url="http://127.0.0.1:9", spare_workers=0) as runtime:
        runtime.sessions = RoleSessions(clock=clock)
        first = json.loads(runtime.invoke("who", b"{}", region=REGION).payload)
        again = json.loads(runtime.invoke("who", b"{}", region=REGION).payload)
        assert again == first  # warm, same credentials
        clock.now += SESSION_SECONDS - REFRESH_MARGIN_SECONDS + 1
        json.loads(runtime.invoke("who", b"{}", region=REGION).payload)  # released as expiring: retired
        fresh = json.loads(runtime.invoke("who", b"{}", region=REGION).payload)
    assert fresh["key"] != first["key"] and fresh["pid"] != first["pid"]
