"""Who may drive the control plane (issue 21, findings 6 and 7): only callers the local AWS knows, with
signatures their secrets give; everyone else gets the service's own error, in its own format.

Over real HTTP against the local AWS in a subprocess (tests.support.fake_server).
"""

from __future__ import annotations

import http.client
import json
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REGION = "us-east-1"
MADE_UP = Credentials("AKIAMADEUPBYAHANDLER", "any-secret-at-all")


def send(server, request: AWSRequest) -> tuple[int, dict, bytes]:
    split = urlsplit(request.url)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(request.method, split.path + (f"?{split.query}" if split.query else ""), body=request.body,
                     headers=dict(request.headers.items()))
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def dynamodb(server, credentials: Credentials, target: str, body: dict, region: str = REGION):
    request = AWSRequest("POST", f"{server.endpoint}/", data=json.dumps(body).encode(), headers={
        "X-Amz-Target": f"DynamoDB_20120810.{target}", "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(credentials, "dynamodb", region).add_auth(request)
    return send(server, request)


def query(server, credentials: Credentials, service: str, action: str, region: str = REGION):
    request = AWSRequest("POST", f"{server.endpoint}/", data=f"Action={action}&Version=2010-05-08".encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(credentials, service, region).add_auth(request)
    return send(server, request)


def own(server) -> Credentials:
    return Credentials(server.credentials.access_key_id, server.credentials.secret_access_key)


def json_error(answer) -> tuple[int, str]:
    status, headers, body = answer
    assert headers["content-type"].startswith("application/x-amz-json"), body
    return status, json.loads(body)["__type"]


def xml_error(answer) -> tuple[int, str]:
    status, headers, body = answer
    assert headers["content-type"] == "text/xml", body
    return status, ET.fromstring(body).findtext("Error/Code")


# -- finding 6: a region no partition has ----------------------------------------------------------------

def test_a_dynamodb_call_scoped_to_a_region_aws_does_not_have_is_400_invalid_signature_in_json(server):
    answer = dynamodb(server, own(server), "ListTables", {}, region="zz")
    assert json_error(answer) == (400, "com.amazon.coral.service#InvalidSignatureException")
    assert b"Credential should be scoped to a valid region, not 'zz'" in answer[2]


def test_a_query_api_call_scoped_to_a_region_aws_does_not_have_is_403_signature_does_not_match_in_xml(server):
    assert xml_error(query(server, own(server), "sts", "GetCallerIdentity", region="zz")) == (403, "SignatureDoesNotMatch")


# -- finding 7: made-up keys, wrong secrets ----------------------------------------------------------------

def test_made_up_keys_get_none_of_the_control_plane(server):
    assert json_error(dynamodb(server, MADE_UP, "CreateTable", {
        "TableName": "stolen", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"})
    ) == (400, "com.amazon.coral.service#UnrecognizedClientException")
    assert xml_error(query(server, MADE_UP, "iam", "ListRoles")) == (403, "InvalidClientTokenId")
    lam = boto3.client("lambda", endpoint_url=server.endpoint, region_name=REGION,
                       aws_access_key_id=MADE_UP.access_key, aws_secret_access_key=MADE_UP.secret_key)
    with pytest.raises(ClientError) as refused:
        lam.list_functions()
    assert (refused.value.response["ResponseMetadata"]["HTTPStatusCode"],
            refused.value.response["Error"]["Code"]) == (403, "UnrecognizedClientException")
    assert "stolen" not in server.client("dynamodb").list_tables()["TableNames"]


def test_the_old_shared_fake_credentials_are_made_up_keys_too(server):
    answer = dynamodb(server, Credentials("testing", "testing"), "ListTables", {})
    assert json_error(answer) == (400, "com.amazon.coral.service#UnrecognizedClientException")


def test_the_right_key_with_a_wrong_secret_is_refused_as_a_signature_mismatch(server):
    wrong = Credentials(server.credentials.access_key_id, "not-the-secret")
    assert json_error(dynamodb(server, wrong, "ListTables", {})) == (400, "com.amazon.coral.service#InvalidSignatureException")
    assert xml_error(query(server, wrong, "sts", "GetCallerIdentity")) == (403, "SignatureDoesNotMatch")


def test_a_body_changed_after_signing_is_refused(server):
    request = AWSRequest("POST", f"{server.endpoint}/", data=b'{"Limit": 1}', headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(own(server), "dynamodb", REGION).add_auth(request)
    request.data = b'{"Limit": 2}'
    request.headers["Content-Length"] = str(len(request.data))
    assert json_error(send(server, request)) == (400, "com.amazon.coral.service#InvalidSignatureException")


def test_a_signature_older_than_15_minutes_is_refused(server, monkeypatch):
    import datetime as dt

    import botocore.auth

    then = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: then)
    answer = dynamodb(server, own(server), "ListTables", {})
    assert json_error(answer) == (400, "com.amazon.coral.service#InvalidSignatureException")
    assert b"Signature expired" in answer[2]


def test_the_tools_own_credentials_and_a_presigned_url_signed_with_them_are_accepted(server):
    assert server.client("sts").get_caller_identity()["Account"] == "123456789012"
    request = AWSRequest("GET", f"{server.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15")
    SigV4QueryAuth(own(server), "sts", REGION, expires=300).add_auth(request)
    status, _, body = send(server, request)
    assert status == 200, body
    tampered = AWSRequest("GET", request.url.replace("GetCallerIdentity", "GetSessionToken"))
    assert xml_error(send(server, tampered)) == (403, "SignatureDoesNotMatch")


# -- moto's admin API --------------------------------------------------------------------------------------

def moto_api(server, credentials: Credentials | None, path: str = "/moto-api/data.json") -> tuple[int, dict, bytes]:
    request = AWSRequest("GET", f"{server.endpoint}{path}")
    if credentials is not None:
        SigV4Auth(credentials, "moto", REGION).add_auth(request)
    return send(server, request)


def test_moto_api_which_dumps_every_sessions_keys_answers_only_the_local_aws_own_credentials(server):
    iam, sts = server.client("iam"), server.client("sts")
    iam.create_role(RoleName="dumper", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName="dumper", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    made = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/dumper", RoleSessionName="handler")["Credentials"]
    session = Credentials(made["AccessKeyId"], made["SecretAccessKey"], made["SessionToken"])

    assert moto_api(server, None)[0] == 403  # the guard: not signed
    assert moto_api(server, MADE_UP)[0] == 403
    status, _, body = moto_api(server, session)
    assert status == 403 and b"moto's admin API" in body
    status, _, body = moto_api(server, own(server))
    assert status == 200 and made["SecretAccessKey"].encode() in body  # what the refusals keep from a handler


# -- the tool's own credentials ------------------------------------------------------------------------------

def test_the_local_credentials_are_made_once_per_state_dir_0600_and_printed_for_the_cli(tmp_path, capsys):
    import os
    import stat

    from crudstack.local import commands
    from crudstack.local.iam.credentials import CREDENTIALS_NAME, local_credentials

    first, again = local_credentials(tmp_path / "state"), local_credentials(tmp_path / "state")
    assert first == again and first != local_credentials(tmp_path / "other")
    assert first.access_key_id.startswith("AKIA") and len(first.access_key_id) == 20 and len(first.secret_access_key) >= 40
    assert stat.S_IMODE(os.stat(tmp_path / "state" / CREDENTIALS_NAME).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert commands.main(["credentials", "--state-dir", str(tmp_path / "state")]) == 0
    assert capsys.readouterr().out.splitlines() == [f"export AWS_ACCESS_KEY_ID={first.access_key_id}",
                                                    f"export AWS_SECRET_ACCESS_KEY={first.secret_access_key}"]


# -- break-21b: one request, two readings; a verifier that throws; a presigned URL's own expiry ---------------

def _weak_session(server, name: str) -> Credentials:
    """A role session whose role has no policy: it may do nothing on the control plane."""
    server.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    made = server.client("sts").assume_role(RoleArn=f"arn:aws:iam::123456789012:role/{name}",
                                            RoleSessionName="handler")["Credentials"]
    return Credentials(made["AccessKeyId"], made["SecretAccessKey"], made["SessionToken"])


def test_a_presigned_url_naming_a_second_credential_does_not_escape_the_sessions_policies(server):
    # The access check read the first X-Amz-Credential (an unknown key: "not a session, not checked") while
    # the signature was verified with the last (the session's own, so it matched): a handler whose role
    # allows nothing listed and could create tables.
    from urllib.parse import quote

    session = _weak_session(server, "weak-presigned")
    assert json_error(dynamodb(server, session, "ListTables", {})) == (400, "com.amazon.coral.service#AccessDeniedException")
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    params = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", f"{MADE_UP.access_key}/{amz_date[:8]}/{REGION}/dynamodb/aws4_request"),
              ("X-Amz-Credential", f"{session.access_key}/{amz_date[:8]}/{REGION}/dynamodb/aws4_request"),
              ("X-Amz-Date", amz_date), ("X-Amz-Expires", "300"), ("X-Amz-SignedHeaders", "host"),
              ("X-Amz-Security-Token", session.token)]
    url = f"{server.endpoint}/?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
    unsigned = AWSRequest("POST", url, data=b"{}", headers={"host": f"127.0.0.1:{server.port}"})
    unsigned.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(session.access_key, session.secret_key), "dynamodb", REGION)
    signature = auth.signature(auth.string_to_sign(unsigned, auth.canonical_request(unsigned)), unsigned)
    forged = AWSRequest("POST", f"{url}&X-Amz-Signature={signature}", data=b"{}", headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"})
    answer = send(server, forged)
    assert json_error(answer) == (400, "com.amazon.coral.service#IncompleteSignatureException")
    assert b"X-Amz-Credential is given more than once" in answer[2]


def test_a_non_ascii_access_key_or_signature_is_a_4xx_not_a_500(server):
    # hmac.compare_digest raises TypeError on non-ASCII strings: the server answered 500.
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    scope = f"{amz_date[:8]}/{REGION}/dynamodb/aws4_request"
    key = server.credentials.access_key_id
    for target, headers in [
        ((f"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%C3%A9/{scope}&X-Amz-Date={amz_date}"
          f"&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"), {}),
        ((f"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={key}/{scope}&X-Amz-Date={amz_date}"
          f"&X-Amz-SignedHeaders=host&X-Amz-Signature=%C3%A9"), {}),
        ("/", {"X-Amz-Date": amz_date, "Authorization": f"AWS4-HMAC-SHA256 Credential=\u00e9/{scope}, "
                                                         f"SignedHeaders=host, Signature={'a' * 64}"}),
    ]:
        request = AWSRequest("POST", f"{server.endpoint}{target}", data=b"{}", headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0", **headers})
        assert json_error(send(server, request)) == (400, "com.amazon.coral.service#IncompleteSignatureException"), target


def test_a_presigned_url_is_refused_once_its_own_x_amz_expires_has_passed(server, monkeypatch):
    # It was accepted for 15 minutes whatever X-Amz-Expires said.
    import datetime as dt

    import botocore.auth

    then = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: then)
    request = AWSRequest("GET", f"{server.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15")
    SigV4QueryAuth(own(server), "sts", REGION, expires=60).add_auth(request)
    answer = send(server, request)
    assert xml_error(answer) == (403, "SignatureDoesNotMatch") and b"Request has expired" in answer[2]
    request = AWSRequest("GET", f"{server.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15")
    SigV4QueryAuth(own(server), "sts", REGION, expires=300).add_auth(request)
    assert send(server, request)[0] == 200
    request = AWSRequest("GET", f"{server.endpoint}/?Action=GetCallerIdentity&Version=2011-06-15")
    SigV4QueryAuth(own(server), "sts", REGION, expires=604801).add_auth(request)
    assert xml_error(send(server, request)) == (400, "IncompleteSignature")


@pytest.mark.parametrize("content", ['{"aws_access', "[]", '{"aws_access_key_id": 1, "aws_secret_access_key": 2}', "\udcff"])
def test_damaged_local_credentials_are_said_plainly_not_a_traceback(tmp_path, capsys, content):
    # A torn or edited credentials.json gave a JSONDecodeError/KeyError traceback from the server, provision
    # and `python -m crudstack.local credentials`.
    import os

    from crudstack.local import commands
    from crudstack.local.iam.credentials import CREDENTIALS_NAME, local_credentials
    from crudstack.local.state.exceptions import StateUnreadable

    state = tmp_path / "state"
    local_credentials(state)
    (state / CREDENTIALS_NAME).write_bytes(content.encode("utf-8", "surrogateescape"))
    os.chmod(state / CREDENTIALS_NAME, 0o600)
    with pytest.raises(StateUnreadable, match=f"{CREDENTIALS_NAME} is damaged .*delete"):
        local_credentials(state)
    assert commands.main(["credentials", "--state-dir", str(state)]) == 1
    assert "is damaged" in capsys.readouterr().err


@pytest.mark.parametrize("declared", ["UNSIGNED-PAYLOAD", "hash of the signed body"])
def test_a_signed_payload_hash_header_does_not_let_a_signature_cover_another_body(server, declared):
    # botocore's canonical request takes the payload hash from X-Amz-Content-SHA256 when it is there: a
    # signature over UNSIGNED-PAYLOAD, or over one body's hash, was accepted with any other body.
    import hashlib

    signed_body = b'{"Limit": 1}'
    if declared != "UNSIGNED-PAYLOAD":
        declared = hashlib.sha256(signed_body).hexdigest()
    request = AWSRequest("POST", f"{server.endpoint}/", data=signed_body, headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Content-SHA256": declared})
    SigV4Auth(own(server), "dynamodb", REGION).add_auth(request)
    request.data = b'{"Limit": 7}'
    request.headers["Content-Length"] = str(len(request.data))
    answer = send(server, request)
    assert json_error(answer) == (400, "com.amazon.coral.service#InvalidSignatureException")
    assert b"x-amz-content-sha256" in answer[2]


def test_the_local_credentials_of_a_state_dir_that_is_a_symlink_are_those_the_server_uses(tmp_path):
    # daemon.ensure_running resolves the state dir and starts the server in the real folder, but
    # local_credentials refused the symlink itself (StateUnsafe "is a symbolic link"): provision started
    # the server, then failed with advice (chown, chmod) that could not help.
    from crudstack.local.iam.credentials import local_credentials

    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert local_credentials(tmp_path / "link") == local_credentials(real)


def test_a_dynamodb_call_signed_for_another_service_does_not_borrow_that_services_permissions(server):
    # DynamoDB calls are routed by X-Amz-Target, the access check took the action's service from the
    # credential scope: a role allowed only cloudwatch:* created a table by signing for 'monitoring'.
    session = _weak_session(server, "metrics-only")
    server.client("iam").put_role_policy(RoleName="metrics-only", PolicyName="metrics", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:*", "Resource": "*"}]}))
    table = {"TableName": "borrowed", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
             "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}
    request = AWSRequest("POST", f"{server.endpoint}/", data=json.dumps(table).encode(), headers={
        "X-Amz-Target": "DynamoDB_20120810.CreateTable", "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(session, "monitoring", REGION).add_auth(request)
    answer = send(server, request)
    assert json_error(answer) == (400, "com.amazon.coral.service#IncompleteSignatureException")
    assert b"scoped to correct service: 'dynamodb'" in answer[2]
    assert "borrowed" not in server.client("dynamodb").list_tables()["TableNames"]


def test_an_invoke_signed_for_another_service_does_not_borrow_that_services_permissions(server):
    # The Invoke API is reached by its path; a role allowed only cloudwatch:* got past the access check by
    # signing for 'monitoring' (action 'cloudwatch:Unknown' on '*'): 404 Function not found instead of 403.
    session = _weak_session(server, "metrics-invoker")
    server.client("iam").put_role_policy(RoleName="metrics-invoker", PolicyName="metrics", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:*", "Resource": "*"}]}))
    request = AWSRequest("POST", f"{server.endpoint}/2015-03-31/functions/any-function/invocations", data=b"{}")
    SigV4Auth(session, "monitoring", REGION).add_auth(request)
    status, _, body = send(server, request)
    assert status in (400, 403) and b"scoped to correct service: 'lambda'" in body, (status, body)
