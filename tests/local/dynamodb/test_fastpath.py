"""DirectDynamoDB answers every DynamoDB call exactly as moto's own app does, and leaves the rest to it."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import EnvironBuilder

from crudstack.local.dynamodb.fastpath import DirectDynamoDB
from crudstack.local.patches import configure_moto
from crudstack.local.server.serve import build_moto_app
from crudstack.local.state.durable import call_wsgi

AUTH = ("AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0")
VARYING = {"date", "x-amzn-requestid", "x-amz-crc32"}  # per answer, whoever serves it


def call(app, action: str, body: dict, **headers: str) -> tuple[str, dict, bytes]:
    environ = EnvironBuilder(path="/", method="POST", data=json.dumps(body), headers={
        "Host": "127.0.0.1:4566", "X-Amz-Target": f"DynamoDB_20120810.{action}", "Authorization": AUTH,
        "Content-Type": "application/x-amz-json-1.0", **headers}).get_environ()
    status, answer_headers, answer = call_wsgi(app, environ)
    return status, {k.lower(): v for k, v in answer_headers if k.lower() not in VARYING}, answer


@pytest.fixture(scope="module")
def apps():
    configure_moto()
    moto_app = build_moto_app()
    direct = DirectDynamoDB(moto_app)
    call(moto_app, "CreateTable", {
        "TableName": "direct-items", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]})
    call(direct, "PutItem", {"TableName": "direct-items", "Item": {"id": {"S": "1"}, "n": {"N": "2.5"}}})
    return moto_app, direct


@pytest.mark.parametrize("action, body", [
    ("GetItem", {"TableName": "direct-items", "Key": {"id": {"S": "1"}}, "ConsistentRead": True}),
    ("GetItem", {"TableName": "direct-items", "Key": {"id": {"S": "missing"}}}),
    ("GetItem", {"TableName": "no-such-table", "Key": {"id": {"S": "1"}}}),
    ("Scan", {"TableName": "direct-items"}),
    ("UpdateItem", {"TableName": "direct-items", "Key": {"id": {"S": "1"}}, "UpdateExpression": "SET n = :n",
                    "ConditionExpression": "n = :old", "ExpressionAttributeValues": {":n": {"N": "3"}, ":old": {"N": "9"}}}),
    ("DescribeTable", {"TableName": "direct-items"}),
])
def test_a_dynamodb_call_is_answered_as_moto_answers_it(apps, action, body):
    moto_app, direct = apps
    assert call(direct, action, body) == call(moto_app, action, body)


def test_an_action_moto_does_not_know_fails_the_same_way(apps):
    moto_app, direct = apps
    with pytest.raises(Exception) as by_moto:
        call(moto_app, "NoSuchAction", {})
    with pytest.raises(Exception) as direct_error:
        call(direct, "NoSuchAction", {})
    assert (type(direct_error.value), str(direct_error.value)) == (type(by_moto.value), str(by_moto.value))


def test_a_call_moto_treats_specially_goes_through_moto_itself(apps):
    moto_app, _ = apps
    seen = []

    def spy(environ, start_response):
        seen.append(environ["PATH_INFO"])
        return moto_app(environ, start_response)

    direct = DirectDynamoDB(spy)
    call(direct, "GetItem", {"TableName": "direct-items", "Key": {"id": {"S": "1"}}}, Origin="http://localhost:3000")
    call(direct, "GetItem", {"TableName": "direct-items", "Key": {"id": {"S": "1"}}})
    assert seen == ["/"]  # the browser's call (CORS), not the plain one
