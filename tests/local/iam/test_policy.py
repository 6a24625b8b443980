"""Identity-based policy evaluation (crudstack/local/iam/policy.py) and what a request asks (requests.py)."""

from __future__ import annotations

import io
import json

import pytest

from crudstack.local.iam.policy import evaluate, statements
from crudstack.local.iam.requests import Signer, asked, signer

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/items"


def policy(*statement_list: dict) -> list:
    return statements([("inline policy p", json.dumps({"Version": "2012-10-17", "Statement": list(statement_list)}))])


def test_an_allow_for_the_action_on_the_resource_allows_it():
    decision = evaluate(policy({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE}),
                        "dynamodb:GetItem", [TABLE])
    assert decision.allowed and decision.allowed_by.policy == "inline policy p"


def test_no_allow_is_an_implicit_deny_and_names_the_statement_that_would_allow_it():
    decision = evaluate(policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE}),
                        "dynamodb:DeleteItem", [TABLE])
    assert not decision.allowed and not decision.explicit
    assert decision.would_allow() == {"Effect": "Allow", "Action": "dynamodb:DeleteItem", "Resource": TABLE}


def test_an_explicit_deny_wins_over_any_allow():
    decision = evaluate(policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
                               {"Sid": "NoDeletes", "Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE}),
                        "dynamodb:DeleteItem", [TABLE])
    assert not decision.allowed and decision.explicit
    assert decision.denied_by.describe() == "inline policy p (statement NoDeletes)"


def test_an_allow_for_another_resource_does_not_allow_it():
    assert not evaluate(policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE + "-other"}),
                        "dynamodb:GetItem", [TABLE]).allowed


@pytest.mark.parametrize("pattern, action, allowed", [
    ("dynamodb:*", "dynamodb:PutItem", True),
    ("dynamodb:Get*", "dynamodb:GetItem", True),
    ("dynamodb:Get*", "dynamodb:PutItem", False),
    ("DYNAMODB:getitem", "dynamodb:GetItem", True),        # action names are case-insensitive
    ("dynamodb:?etItem", "dynamodb:GetItem", True),
    ("dynamodb:?etItem", "dynamodb:GetItems", False),
    ("dynamodb:Get.tem", "dynamodb:GetItem", False),       # a dot is a dot, not a regex
])
def test_action_wildcards(pattern, action, allowed):
    assert evaluate(policy({"Effect": "Allow", "Action": pattern, "Resource": "*"}), action, [TABLE]).allowed is allowed


def test_resource_arns_are_case_sensitive_and_take_wildcards():
    assert evaluate(policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:*:*:table/ite?s"}),
                    "dynamodb:GetItem", [TABLE]).allowed
    assert not evaluate(policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE.upper()}),
                        "dynamodb:GetItem", [TABLE]).allowed


def test_not_action_and_not_resource_apply_to_everything_else():
    allow_all_but_deletes = policy({"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": "*"})
    assert evaluate(allow_all_but_deletes, "dynamodb:GetItem", [TABLE]).allowed
    assert not evaluate(allow_all_but_deletes, "dynamodb:DeleteItem", [TABLE]).allowed
    deny_elsewhere = policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
                            {"Effect": "Deny", "Action": "dynamodb:*", "NotResource": TABLE})
    assert evaluate(deny_elsewhere, "dynamodb:GetItem", [TABLE]).allowed
    assert evaluate(deny_elsewhere, "dynamodb:GetItem", [TABLE + "2"]).explicit


def test_a_conditional_statement_is_not_evaluated_and_grants_nothing():
    decision = evaluate(policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE,
                                "Condition": {"Bool": {"aws:SecureTransport": "true"}}}), "dynamodb:GetItem", [TABLE])
    assert not decision.allowed
    assert [s.policy for s in decision.skipped_conditions] == ["inline policy p"]


def test_every_resource_of_a_request_must_be_allowed():
    allowed = policy({"Effect": "Allow", "Action": "dynamodb:BatchWriteItem", "Resource": TABLE})
    decision = evaluate(allowed, "dynamodb:BatchWriteItem", [TABLE, TABLE + "2"])
    assert not decision.allowed and decision.resource == TABLE + "2"


def test_a_single_statement_object_and_an_unreadable_document_are_read_as_iam_stores_them():
    found = statements([("a", {"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}), ("b", "{not json")])
    assert [s.policy for s in found] == ["a"]


# -- what a request asks -----------------------------------------------------------------------------------------


def environ(target: str = "", body: dict | str = "", **extra) -> dict:
    data = (json.dumps(body) if isinstance(body, dict) else body).encode()
    base = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "wsgi.input": io.BytesIO(data),
            "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260101/us-east-1/dynamodb/aws4_request, "
                                  "SignedHeaders=host, Signature=" + "0" * 64}
    if target:
        base["HTTP_X_AMZ_TARGET"] = target
    base.update(extra)
    return base


def test_the_signer_is_the_credential_scope_of_the_authorization_header():
    who = signer({**environ(), "HTTP_X_AMZ_SECURITY_TOKEN": "tok"})
    assert who == Signer("ASIAEXAMPLE", "us-east-1", "dynamodb", "tok")


@pytest.mark.parametrize("target, body, action, resources", [
    ("DynamoDB_20120810.DeleteItem", {"TableName": "items"}, "dynamodb:DeleteItem", (TABLE,)),
    ("DynamoDB_20120810.Query", {"TableName": "items", "IndexName": "byName"}, "dynamodb:Query", (TABLE + "/index/byName",)),
    ("DynamoDB_20120810.BatchWriteItem", {"RequestItems": {"items": [], "b": []}}, "dynamodb:BatchWriteItem",
     ("arn:aws:dynamodb:us-east-1:123456789012:table/b", TABLE)),
    ("DynamoDB_20120810.ListTables", {}, "dynamodb:ListTables", ("*",)),
])
def test_dynamodb_action_and_table_come_from_the_target_and_body(target, body, action, resources):
    env = environ(target, body)
    got = asked(env, env["wsgi.input"].read(), signer(env), "123456789012")
    assert (got.protocol, got.action, got.resources) == ("json", action, resources)


def test_lambda_invoke_is_the_invoke_function_action_on_the_function():
    env = environ(PATH_INFO="/2015-03-31/functions/fn/invocations",
                  HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=ASIAX/20260101/us-east-1/lambda/aws4_request, "
                                     "SignedHeaders=host, Signature=" + "0" * 64)
    got = asked(env, b"{}", signer(env), "123456789012")
    assert (got.protocol, got.action, got.resources) == (
        "rest", "lambda:InvokeFunction", ("arn:aws:lambda:us-east-1:123456789012:function:fn",))


def test_a_query_protocol_action_and_topic_come_from_the_form():
    body = "Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aalerts&Message=x"
    env = environ(body=body, CONTENT_TYPE="application/x-www-form-urlencoded",
                  HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=ASIAX/20260101/us-east-1/sns/aws4_request, "
                                     "SignedHeaders=host, Signature=" + "0" * 64)
    got = asked(env, body.encode(), signer(env), "123456789012")
    assert (got.protocol, got.action, got.resources) == ("query", "sns:Publish", ("arn:aws:sns:us-east-1:123456789012:alerts",))
