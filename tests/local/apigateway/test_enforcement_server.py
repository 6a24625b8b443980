"""API keys, usage plans and AWS_IAM through a real local server over HTTP on loopback.

The server (tests/local/conftest.py) runs with the fake Lambda runtime; the API, usage plans, keys,
IAM users and gateway responses are made with boto3 against it, as provision would make them.
Throttling is made deterministic by a rate that refills one token in about 17 minutes.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.local.server.test_server import Stack
from tests.support.local_server import ACCOUNT, REGION

CORS = {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
        "gatewayresponse.header.Access-Control-Allow-Headers":
            "'Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token,If-Match'",
        "gatewayresponse.header.Access-Control-Allow-Methods": "'GET,POST,PUT,DELETE,OPTIONS'"}
SLOW_RATE = 0.001   # one token in ~17 minutes: no refill during a test


class SecuredStack(Stack):
    def method(self, method: str, path: str, function_arn: str, *, authorization: str = "NONE",
               key_required: bool = False) -> None:
        where = {"restApiId": self.api_id, "resourceId": self.resource(path), "httpMethod": method}
        self.apigw.put_method(**where, authorizationType=authorization, apiKeyRequired=key_required)
        self.apigw.put_integration(**where, type="AWS_PROXY", integrationHttpMethod="POST",
                                   uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations")
        self.lam.add_permission(FunctionName=function_arn, StatementId=f"apigw-{uuid.uuid4().hex[:8]}",
                                Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com",
                                SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{self.api_id}/*/{method}{path}")

    def key(self, **plan) -> str:
        key = self.apigw.create_api_key(name=f"key-{uuid.uuid4().hex[:6]}", enabled=True)
        usage_plan = self.apigw.create_usage_plan(name=f"plan-{key['id']}", apiStages=[{"apiId": self.api_id, "stage": "prod"}],
                                                  **plan)
        self.apigw.create_usage_plan_key(usagePlanId=usage_plan["id"], keyId=key["id"], keyType="API_KEY")
        return key["value"]


@pytest.fixture(scope="module")
def secured(server):
    stack = SecuredStack(server)
    echo = stack.function("echo")
    stack.method("GET", "/items", echo, key_required=True)
    stack.method("GET", "/private", echo, authorization="AWS_IAM")
    stack.apigw.put_gateway_response(restApiId=stack.api_id, responseType="DEFAULT_4XX", responseParameters=CORS)
    stack.deploy()
    return stack


@pytest.fixture(scope="module")
def web():
    with requests.Session() as session:
        yield session


def assert_browser_can_read(response: requests.Response) -> None:
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Api-Key" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Content-Type"] == "application/json"


def test_api_key_no_key_wrong_key_and_right_key(secured, web):
    value = secured.key()
    missing = web.get(secured.url("/items"), timeout=10)
    wrong = web.get(secured.url("/items"), headers={"x-api-key": "wrong"}, timeout=10)
    for response in (missing, wrong):
        assert (response.status_code, response.json()) == (403, {"message": "Forbidden"})
        assert_browser_can_read(response)
    right = web.get(secured.url("/items"), headers={"x-api-key": value}, timeout=10)
    assert right.status_code == 200
    assert right.json()["requestContext"]["identity"]["apiKey"] == value


def test_a_key_disabled_or_a_plan_unlinked_is_refused_by_the_next_request(secured, web):
    # What the gateway reads about keys and plans is cached until a write: this write must empty it.
    value = secured.key()
    key_id = next(k["id"] for k in secured.apigw.get_api_keys(includeValues=True)["items"] if k["value"] == value)
    assert web.get(secured.url("/items"), headers={"x-api-key": value}, timeout=10).status_code == 200
    secured.apigw.update_api_key(apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    assert web.get(secured.url("/items"), headers={"x-api-key": value}, timeout=10).status_code == 403


def test_burst_exceeded_answers_429_too_many_requests(secured, web):
    value = secured.key(throttle={"rateLimit": SLOW_RATE, "burstLimit": 2})
    answers = [web.get(secured.url("/items"), headers={"x-api-key": value}, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {"message": "Too Many Requests"}
    assert_browser_can_read(answers[2])


def test_quota_exhausted_answers_429_limit_exceeded(secured, web):
    value = secured.key(quota={"limit": 2, "period": "DAY"})
    answers = [web.get(secured.url("/items"), headers={"x-api-key": value}, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {"message": "Limit Exceeded"}
    assert_browser_can_read(answers[2])


def test_stage_throttling_set_by_update_stage_applies_at_once(server, web):
    stack = SecuredStack(server)
    stack.method("GET", "/items", stack.function("echo"))
    stack.deploy()
    stack.apigw.update_stage(restApiId=stack.api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(SLOW_RATE)},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "1"}])
    assert [web.get(stack.url("/items"), timeout=10).status_code for _ in range(2)] == [200, 429]


def sign(url: str, access_key: str, secret: str) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(access_key, secret), "execute-api", REGION).add_auth(request)
    return dict(request.headers.items())


def test_aws_iam_signed_request_allowed_and_denied(secured, web):
    iam = secured.server.client("iam")
    url = secured.url("/private")
    keys = {}
    for name, resource in (("allowed", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{secured.api_id}/prod/GET/private"),
                           ("denied", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{secured.api_id}/prod/POST/*")):
        user = f"{name}-{uuid.uuid4().hex[:6]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="invoke", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": resource}]}))
        created = iam.create_access_key(UserName=user)["AccessKey"]
        keys[name] = (created["AccessKeyId"], created["SecretAccessKey"], user)

    allowed = web.get(url, headers=sign(url, *keys["allowed"][:2]), timeout=10)
    assert allowed.status_code == 200
    assert allowed.json()["requestContext"]["identity"]["userArn"] == f"arn:aws:iam::{ACCOUNT}:user/{keys['allowed'][2]}"

    denied = web.get(url, headers=sign(url, *keys["denied"][:2]), timeout=10)
    assert denied.status_code == 403
    assert denied.json() == {"Message": f"User: arn:aws:iam::{ACCOUNT}:user/{keys['denied'][2]} is not authorized to perform: "
                                        f"execute-api:Invoke on resource: arn:aws:execute-api:{REGION}:{ACCOUNT}:"
                                        f"{secured.api_id}/prod/GET/private because no identity-based policy allows "
                                        "the execute-api:Invoke action"}
    assert_browser_can_read(denied)

    unsigned = web.get(url, timeout=10)
    assert (unsigned.status_code, unsigned.json()) == (403, {"message": "Missing Authentication Token"})
    assert_browser_can_read(unsigned)


def test_spaces_around_a_key_are_not_part_of_it_on_either_side(secured):
    """Issue 21 (13): leading spaces were dropped and trailing ones refused; a field value has neither (RFC 9110 5.5)."""
    import http.client
    from urllib.parse import urlsplit

    value = secured.key()
    url = urlsplit(secured.url("/items"))
    answers = []
    for sent in (f"  {value}", f"{value}  ", f"\t{value} \t"):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            connection.request("GET", url.path, headers={"x-api-key": sent})   # requests refuses such a header
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())["requestContext"]["identity"]["apiKey"]))
        finally:
            connection.close()

    assert answers == [(200, value)] * 3


@pytest.mark.parametrize("host", ["[", "[::1", "]x"])
def test_a_signed_request_with_a_host_no_url_can_hold_is_refused_403_not_500(secured, host):
    """A Host header that is no URL's authority ('[' opens an IPv6 literal never closed) made the signature
    check raise ValueError: a 500 for a request from anyone who knows an access key ID (not a secret)."""
    import socket
    from urllib.parse import urlsplit

    iam = secured.server.client("iam")
    user = f"host-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    created = iam.create_access_key(UserName=user)["AccessKey"]
    url = secured.url("/private")
    headers = {**sign(url, created["AccessKeyId"], created["SecretAccessKey"]), "Host": host}
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", secured.server.port), timeout=10) as sock:
        sock.sendall(f"GET {urlsplit(url).path} HTTP/1.1\r\n{fields}Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status == 403, answer[:500]
    assert b"signature" in answer.lower()
