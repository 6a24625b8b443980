"""The control-plane guard (crudstack/local/server/guard.py): a web page cannot drive the local AWS.

Over real HTTP against the local AWS in a subprocess (tests.support.fake_server), with raw requests
a browser could send (DNS rebinding, simple-request CSRF, preflights), and signed ones an SDK sends.
"""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from crudstack.local.server.guard import loopback_host, refusal, same_origin, sigv4_signed

REGION = "us-east-1"


# -- the rules, alone --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:4566", "127.1.2.3:80", "localhost", "LOCALHOST:4566",
                                  "api.localhost:4566", "localhost.", "[::1]", "[::1]:4566"])
def test_loopback_hosts_are_accepted(host):
    assert loopback_host(host)


@pytest.mark.parametrize("host", [None, "", "evil.example", "evil.example:4566", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "10.0.0.1:4566", "[::2]:4566", "[::1]x", "127.0.0.1:abc",
                                  "0.0.0.0:4566"])
def test_other_hosts_are_refused(host):
    assert not loopback_host(host)


def test_same_origin_compares_the_origin_with_the_host():
    assert same_origin({"HTTP_HOST": "127.0.0.1:4566"})  # no Origin: an SDK, curl
    assert same_origin({"HTTP_HOST": "127.0.0.1:4566", "HTTP_ORIGIN": "http://127.0.0.1:4566"})
    assert not same_origin({"HTTP_HOST": "127.0.0.1:4566", "HTTP_ORIGIN": "https://evil.example"})
    assert not same_origin({"HTTP_HOST": "127.0.0.1:4566", "HTTP_ORIGIN": "http://127.0.0.1:3000"})
    assert not same_origin({"HTTP_HOST": "127.0.0.1:4566", "HTTP_ORIGIN": "null"})
    assert not same_origin({"HTTP_HOST": "127.0.0.1:4566", "HTTP_SEC_FETCH_SITE": "cross-site"})
    assert same_origin({"HTTP_HOST": "127.0.0.1:4566", "HTTP_SEC_FETCH_SITE": "same-origin"})


def test_a_sigv4_shape_is_a_header_or_a_presigned_query():
    header = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32)
    assert sigv4_signed({"HTTP_AUTHORIZATION": header})
    assert not sigv4_signed({"HTTP_AUTHORIZATION": "Bearer x"})
    assert not sigv4_signed({"HTTP_AUTHORIZATION": header.replace("aws4_request", "x")})
    assert sigv4_signed({"QUERY_STRING": "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Signature=00"})


def test_each_refusal_names_its_rule_and_what_to_do():
    rule, message = refusal({"HTTP_HOST": "evil.example", "PATH_INFO": "/"})
    assert rule == "loopback-host" and "evil.example" in message and "127.0.0.1" in message
    rule, message = refusal({"HTTP_HOST": "127.0.0.1", "PATH_INFO": "/", "REQUEST_METHOD": "POST"})
    assert rule == "sigv4" and "AWS4-HMAC-SHA256" in message and "SDK" in message


# -- over HTTP ---------------------------------------------------------------------------------------------------

def raw(server, method: str, path: str, *, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def signed(server, target: str, body: dict, extra: dict | None = None) -> tuple[int, dict, bytes]:
    """A DynamoDB call signed as botocore signs it, with the local AWS's own credentials."""
    data = json.dumps(body).encode()
    request = AWSRequest("POST", f"{server.endpoint}/", data=data, headers={
        "X-Amz-Target": f"DynamoDB_20120810.{target}", "Content-Type": "application/x-amz-json-1.0", **(extra or {})})
    SigV4Auth(Credentials(server.credentials.access_key_id, server.credentials.secret_access_key), "dynamodb",
              REGION).add_auth(request)
    return raw(server, "POST", "/", body=data, headers=dict(request.headers.items()))


@pytest.fixture(scope="module")
def table(server):
    name = f"guarded-{uuid.uuid4().hex[:6]}"
    dynamodb = server.client("dynamodb")
    dynamodb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName=name, Item={"id": {"S": "keep"}})
    return name


def refused_with(answer, rule: str) -> dict:
    status, headers, body = answer
    assert status == 403, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["rule"] == rule and error["__type"] == "RequestRefused" and error["message"]
    return error


def items(server, table) -> list:
    return server.client("dynamodb").scan(TableName=table)["Items"]


def test_a_rebound_host_is_refused_even_when_signed_and_for_the_health_check(server, table):
    refused_with(signed(server, "DeleteItem", {"TableName": table, "Key": {"id": {"S": "keep"}}},
                        {"Host": "evil.example"}), "loopback-host")
    refused_with(raw(server, "GET", "/_localaws/health", headers={"Host": "evil.example:4566"}), "loopback-host")
    refused_with(raw(server, "POST", "/moto-api/reset", headers={"Host": "evil.example"}), "loopback-host")
    assert items(server, table) == [{"id": {"S": "keep"}}]


def test_an_unsigned_dynamodb_call_is_refused_and_changes_nothing(server, table):
    body = json.dumps({"TableName": table, "Key": {"id": {"S": "keep"}}}).encode()
    error = refused_with(raw(server, "POST", "/", body=body, headers={
        "X-Amz-Target": "DynamoDB_20120810.DeleteItem", "Content-Type": "application/x-amz-json-1.0"}), "sigv4")
    assert "Signature Version 4" in error["message"]
    assert items(server, table) == [{"id": {"S": "keep"}}]


def test_a_form_post_from_another_site_is_refused_and_changes_nothing(server, table):
    # What <form method=post action=http://127.0.0.1:PORT/> sends: a simple request, no preflight.
    form = f"Action=DeleteTable&TableName={table}".encode()
    refused_with(raw(server, "POST", "/", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site"}), "same-origin")
    refused_with(raw(server, "POST", "/moto-api/reset", headers={"Origin": "https://evil.example"}), "same-origin")
    assert items(server, table) == [{"id": {"S": "keep"}}]


def test_a_preflight_to_the_aws_apis_is_refused(server):
    refused_with(raw(server, "OPTIONS", "/", headers={
        "Origin": f"http://127.0.0.1:{server.port}", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,x-amz-target"}), "no-cors")


def test_aws_api_answers_carry_no_cors_headers(server, table):
    status, headers, _ = signed(server, "GetItem", {"TableName": table, "Key": {"id": {"S": "keep"}}},
                                {"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200
    assert not [name for name in headers if name.startswith("access-control-")]
    # /moto-api/ must be signed with the local AWS's own credentials (issue 21: it dumps every session's keys)
    request = AWSRequest("GET", f"{server.endpoint}/moto-api/data.json")
    SigV4Auth(Credentials(server.credentials.access_key_id, server.credentials.secret_access_key), "moto",
              REGION).add_auth(request)
    status, headers, _ = raw(server, "GET", "/moto-api/data.json", headers=dict(request.headers.items()))
    assert status == 200 and not [name for name in headers if name.startswith("access-control-")]


def test_the_sdk_still_works_and_the_invoke_url_keeps_the_apis_own_cors(server):
    apigw = server.client("apigateway")  # signed by botocore: allowed
    api = apigw.create_rest_api(name=f"cors-{uuid.uuid4().hex[:6]}")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    where = {"restApiId": api, "resourceId": root, "httpMethod": "OPTIONS"}
    apigw.put_method(**where, authorizationType="NONE")
    apigw.put_integration(**where, type="MOCK", requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_method_response(**where, statusCode="200",
                              responseParameters={"method.response.header.Access-Control-Allow-Origin": False})
    apigw.put_integration_response(**where, statusCode="200", responseParameters={
        "method.response.header.Access-Control-Allow-Origin": "'https://app.example.com'"})
    apigw.create_deployment(restApiId=api, stageName="prod")

    status, headers, _ = raw(server, "OPTIONS", f"/restapis/{api}/prod/_user_request_/", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET", "Host": "items.example"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"


@pytest.mark.parametrize("host", ["::1", "[::1]", "[::1]:4566", "localhost:4566", "[::1]x", "127.0.0.1:abc", "evil.example"])
def test_the_console_and_the_control_plane_read_a_host_alike(host):
    from crudstack.local.console.guard import refusal as console_refusal

    console_ok = console_refusal({"HTTP_HOST": host, "REQUEST_METHOD": "GET"}) is None
    assert console_ok == loopback_host(host)
