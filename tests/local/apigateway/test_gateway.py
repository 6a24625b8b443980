"""Unit tests of the gateway's layers on plain data: matcher, event builder, response mapper,
permission check, MOCK integration, snapshots and metrics."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from moto import mock_aws

from crudstack.local.apigateway.app import parse_invoke_path
from crudstack.local.apigateway.events import GatewayRequest, RequestIds, build_proxy_event
from crudstack.local.apigateway.exceptions import MalformedProxyResult
from crudstack.local.apigateway.mock import mock_response
from crudstack.local.apigateway.models import (
    DeployedApi,
    DeployedIntegration,
    DeployedIntegrationResponse,
    DeployedMethod,
    DeploymentSnapshots,
    StageTarget,
)
from crudstack.local.apigateway.proxy import map_proxy_result
from crudstack.local.apigateway.routing import match_route
from crudstack.local.awslambda.permissions import check_invoke_permission, source_arn_for
from crudstack.local.cloudwatch.metrics import MetricsBatcher

ACCOUNT = "123456789012"
PROXY = DeployedIntegration(type="AWS_PROXY", uri="arn:...", request_templates={}, responses=())


def api(*routes: tuple[str, str], binary_media_types=()) -> DeployedApi:
    resources: dict[str, dict] = {}
    for method, path in routes:
        resources.setdefault(path, {})[method] = PROXY
    return DeployedApi.from_resources(
        api_id="abc123", deployment_id="dep1", account_id=ACCOUNT, region="us-east-1",
        resources=[(f"r{i}", path, methods) for i, (path, methods) in enumerate(resources.items())],
        binary_media_types=binary_media_types,
    )


# ---------------------------------------------------------------------------- route matcher

CRUD = api(("GET", "/items"), ("POST", "/items"), ("GET", "/items/{id}"), ("PUT", "/items/{id}"),
           ("GET", "/items/special"), ("ANY", "/files/{proxy+}"), ("GET", "/"), ("ANY", "/any"), ("DELETE", "/any"))


def test_a_literal_path_matches_its_resource_and_method():
    match = match_route(CRUD, "POST", "/items")
    assert (match.method.resource_path, match.method.http_method, match.path_parameters) == ("/items", "POST", {})


def test_a_param_part_captures_the_segment():
    match = match_route(CRUD, "PUT", "/items/42")
    assert match.method.resource_path == "/items/{id}"
    assert match.path_parameters == {"id": "42"}


def test_a_literal_part_wins_over_a_param_part():
    assert match_route(CRUD, "GET", "/items/special").method.resource_path == "/items/special"


def test_when_the_literal_branch_lacks_the_method_the_param_branch_is_not_used_either():
    # API Gateway picks the resource first (the literal one), then the method: PUT /items/special is 403.
    assert match_route(CRUD, "PUT", "/items/special") is None


def test_a_greedy_proxy_part_takes_the_rest_of_the_path():
    match = match_route(CRUD, "PATCH", "/files/a/b/c.txt")
    assert match.method.resource_path == "/files/{proxy+}"
    assert match.path_parameters == {"proxy": "a/b/c.txt"}


def test_a_greedy_proxy_part_needs_at_least_one_segment():
    assert match_route(CRUD, "GET", "/files") is None


def test_a_method_of_its_own_wins_over_any():
    assert match_route(CRUD, "DELETE", "/any").method.http_method == "DELETE"
    assert match_route(CRUD, "PATCH", "/any").method.http_method == "ANY"


def test_a_trailing_slash_is_ignored_and_the_root_resource_matches():
    assert match_route(CRUD, "GET", "/items/").method.resource_path == "/items"
    assert match_route(CRUD, "GET", "/").method.resource_path == "/"


@pytest.mark.parametrize("method, path", [("DELETE", "/items"), ("GET", "/nothing"), ("GET", "/items/1/2"),
                                          ("HEAD", "/items")])
def test_an_unknown_route_or_method_does_not_match(method, path):
    assert match_route(CRUD, method, path) is None


@pytest.mark.parametrize("path, expected", [
    ("/restapis/abc/prod/_user_request_/items/1", ("abc", "prod", "/items/1")),
    ("/restapis/abc/prod/_user_request_", ("abc", "prod", "/")),
    ("/_aws/execute-api/abc/prod/items", ("abc", "prod", "/items")),
    ("/_aws/execute-api/abc/prod", ("abc", "prod", "/")),
    ("/_aws/execute-api/abc", None),
    ("/restapis/abc/resources/xyz", None),  # moto's own API Gateway API
    ("/restapis/abc/deployments", None),
])
def test_invoke_paths_are_recognised_in_both_local_url_forms(path, expected):
    assert parse_invoke_path(path) == expected


# ---------------------------------------------------------------------------- event builder

IDS = RequestIds(request_id="req-1", extended_request_id="ext=", trace_id="Root=1-00000000-abc", epoch_ms=1_700_000_000_123)


def event_for(method="GET", path="/items/42", query="", headers=(("Host", "127.0.0.1:4566"),), body=b"",
              stage_variables=None, deployed=CRUD):
    request = GatewayRequest(http_method=method, api_id="abc123", stage="prod", path=path, query_string=query,
                             headers=tuple(headers), body=body, source_ip="127.0.0.9")
    route = match_route(deployed, method, path)
    target = StageTarget(deployed, "ItemsApi", "prod", stage_variables or {})
    return build_proxy_event(request, target, route, IDS, ACCOUNT)


def test_the_event_has_the_rest_v1_proxy_shape():
    event = event_for(headers=(("Host", "127.0.0.1:4566"), ("User-Agent", "curl/8"), ("Accept", "a"), ("Accept", "b")))
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["headers"]["Accept"] == "b"
    assert event["multiValueHeaders"]["Accept"] == ["a", "b"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.9"
    assert event["headers"]["X-Forwarded-Port"] == "4566"
    assert event["headers"]["X-Amzn-Trace-Id"] == IDS.trace_id
    context = event["requestContext"]
    assert context["path"] == "/prod/items/42"
    assert context["resourcePath"] == "/items/{id}"
    assert context["resourceId"] == match_route(CRUD, "GET", "/items/42").method.resource_id
    assert context["requestTime"] == "14/Nov/2023:22:13:20 +0000"
    assert context["requestTimeEpoch"] == IDS.epoch_ms
    assert (context["requestId"], context["extendedRequestId"]) == ("req-1", "ext=")
    assert (context["accountId"], context["apiId"], context["stage"], context["protocol"]) == (ACCOUNT, "abc123", "prod", "HTTP/1.1")
    assert context["identity"]["sourceIp"] == "127.0.0.9"
    assert context["identity"]["userAgent"] == "curl/8"


def test_empty_collections_are_null_as_on_aws():
    event = event_for(path="/items")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_query_strings_are_decoded_and_the_last_repeat_wins():
    event = event_for(query="tag=a&tag=b&q=caf%C3%A9&empty=")
    assert event["queryStringParameters"] == {"tag": "b", "q": "café", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "q": ["café"], "empty": [""]}


def test_stage_variables_are_passed():
    assert event_for(stage_variables={"table": "t1"})["stageVariables"] == {"table": "t1"}


def test_a_json_body_is_passed_as_text():
    event = event_for(method="POST", path="/items", headers=(("Content-Type", "application/json"),), body=b'{"a": "\xc3\xa9"}')
    assert (event["body"], event["isBase64Encoded"]) == ('{"a": "é"}', False)


def test_a_body_that_is_not_utf8_is_base64_encoded():
    event = event_for(method="POST", path="/items", headers=(("Content-Type", "application/octet-stream"),), body=b"\xff\x00")
    assert (event["body"], event["isBase64Encoded"]) == (base64.b64encode(b"\xff\x00").decode(), True)


def test_a_body_matching_the_apis_binary_media_types_is_base64_encoded():
    deployed = api(("POST", "/upload"), binary_media_types=("image/*",))
    event = event_for(method="POST", path="/upload", headers=(("Content-Type", "image/png"),), body=b"abc", deployed=deployed)
    assert (event["body"], event["isBase64Encoded"]) == ("YWJj", True)


# ---------------------------------------------------------------------------- response mapper

def proxy(**result) -> bytes:
    return json.dumps(result).encode()


def test_a_proxy_result_becomes_the_http_response():
    response = map_proxy_result(proxy(statusCode=201, headers={"Content-Type": "text/plain", "X-A": "1"}, body="made"))
    assert response.status == 201
    assert response.headers == [("Content-Type", "text/plain"), ("X-A", "1")]
    assert response.body == b"made"


def test_content_type_defaults_to_json_and_a_missing_body_is_empty():
    response = map_proxy_result(proxy(statusCode=204))
    assert response.headers == [("Content-Type", "application/json")]
    assert response.body == b""


def test_multi_value_headers_win_over_headers_of_the_same_name():
    response = map_proxy_result(proxy(statusCode=200, headers={"Set-Cookie": "x=0", "X-B": True},
                                      multiValueHeaders={"Set-Cookie": ["a=1", "b=2"]}))
    assert ("Set-Cookie", "x=0") not in response.headers
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert ("X-B", "true") in response.headers


def test_a_base64_body_is_decoded():
    response = map_proxy_result(proxy(statusCode=200, body=base64.b64encode(b"\x89PNG").decode(), isBase64Encoded=True))
    assert response.body == b"\x89PNG"


def test_the_functions_own_content_length_is_dropped():
    response = map_proxy_result(proxy(statusCode=200, headers={"Content-Length": "999"}, body="ab"))
    assert all(k.lower() != "content-length" for k, _ in response.headers)


@pytest.mark.parametrize("payload", [
    b"not json",
    b"[1, 2]",
    b'"hello"',
    proxy(body="no status"),
    proxy(statusCode="200"),
    proxy(statusCode=True),
    proxy(statusCode=200, body={"a": 1}),
    proxy(statusCode=200, status="extra key"),
    proxy(statusCode=200, headers={"X": {"nested": 1}}),
    proxy(statusCode=200, multiValueHeaders={"X": "not a list"}),
    proxy(statusCode=200, body="%%%", isBase64Encoded=True),
])
def test_a_malformed_proxy_result_is_refused(payload):
    with pytest.raises(MalformedProxyResult):
        map_proxy_result(payload)


# ---------------------------------------------------------------------------- permission check

SOURCE = source_arn_for("us-east-1", ACCOUNT, "abc123", "prod", "GET", "/items/{id}")


def policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def grant(source_arn=None, principal={"Service": "apigateway.amazonaws.com"}, action="lambda:InvokeFunction", **condition):
    statement = {"Sid": "s", "Effect": "Allow", "Principal": principal, "Action": action, "Resource": "arn:fn"}
    if source_arn is not None:
        statement["Condition"] = {"ArnLike": {"AWS:SourceArn": source_arn}}
    if condition:
        statement.setdefault("Condition", {}).update(condition)
    return statement


def test_the_source_arn_names_region_account_api_stage_method_and_resource_path():
    assert SOURCE == "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/items/{id}"


def test_the_source_arn_names_the_partition_of_its_region():
    assert source_arn_for("cn-north-1", ACCOUNT, "abc123", "prod", "GET", "/items").startswith("arn:aws-cn:execute-api:cn-north-1:")
    assert source_arn_for("us-gov-west-1", ACCOUNT, "abc123", "prod", "GET", "/items").startswith("arn:aws-us-gov:execute-api:")


@pytest.mark.parametrize("granted", [
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/*/GET/items/*",
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/prod/GET/items/{{id}}",
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/*/*/*",
    f"arn:aws:execute-api:*:{ACCOUNT}:abc123/*",
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/pro?/GET/items/*",
])
def test_a_matching_source_arn_grants_the_invocation(granted):
    assert check_invoke_permission(policy(grant(granted)), SOURCE, ACCOUNT) is None


@pytest.mark.parametrize("granted", [
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/*/POST/items/*",
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:other/*/GET/items/*",
    f"arn:aws:execute-api:us-west-2:{ACCOUNT}:abc123/*/GET/items/*",
    f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/*/GET/items",
    # ArnLike matches the six colon-separated parts one by one: a * does not cross a colon.
    "arn:aws:execute-api:us-east-1*abc123/*",
])
def test_a_source_arn_that_does_not_match_is_refused_with_the_reason(granted):
    reason = check_invoke_permission(policy(grant(granted)), SOURCE, ACCOUNT)
    assert reason is not None and SOURCE in reason


def test_no_policy_is_refused():
    assert "no resource-based policy" in check_invoke_permission(None, SOURCE, ACCOUNT)


def test_another_principal_or_action_is_refused():
    assert check_invoke_permission(policy(grant(principal={"Service": "sns.amazonaws.com"})), SOURCE, ACCOUNT)
    assert check_invoke_permission(policy(grant(action="lambda:GetFunction")), SOURCE, ACCOUNT)


def test_a_statement_without_source_arn_lets_any_api_invoke_as_on_aws():
    assert check_invoke_permission(policy(grant()), SOURCE, ACCOUNT) is None


def test_a_source_account_condition_must_match_too():
    other_account = grant(StringEquals={"AWS:SourceAccount": "999999999999"})
    assert check_invoke_permission(policy(other_account), SOURCE, ACCOUNT)
    assert check_invoke_permission(policy(grant(StringEquals={"AWS:SourceAccount": ACCOUNT})), SOURCE, ACCOUNT) is None


def test_one_matching_statement_among_others_is_enough():
    statements = policy(grant(f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/*/POST/items"),
                        grant(f"arn:aws:execute-api:us-east-1:{ACCOUNT}:abc123/*/GET/items/*"))
    assert check_invoke_permission(statements, SOURCE, ACCOUNT) is None


# ---------------------------------------------------------------------------- MOCK integration

def mock(request_template='{"statusCode": 200}', *responses, declared=None):
    """A MOCK method; `declared`: status -> the headers its method response declares (default: what the
    integration responses map, as the console's Enable CORS makes them)."""
    integration = DeployedIntegration(type="MOCK", uri=None, request_templates={"application/json": request_template},
                                      responses=tuple(responses))
    if declared is None:
        declared = {r.status_code: frozenset(k.removeprefix("method.response.header.") for k in r.response_parameters)
                    for r in responses}
    return DeployedMethod("OPTIONS", "r1", "/items", integration, declared)


CORS = DeployedIntegrationResponse("200", None, {"method.response.header.Access-Control-Allow-Origin": "'*'",
                                                 "method.response.header.Access-Control-Allow-Methods": "'GET,POST,OPTIONS'"},
                                   {"application/json": None})


def test_a_mock_answers_with_the_selected_integration_responses_static_headers():
    response = mock_response(mock('{"statusCode": 200}', CORS), None, "test")
    assert response.status == 200
    assert ("Access-Control-Allow-Origin", "*") in response.headers
    assert ("Access-Control-Allow-Methods", "GET,POST,OPTIONS") in response.headers
    assert ("Content-Type", "application/json") in response.headers
    assert response.body == b""


def test_a_mock_selects_by_selection_pattern_before_the_default():
    teapot = DeployedIntegrationResponse("418", "4\\d\\d", {}, {"application/json": '{"tea": true}'})
    response = mock_response(mock('{"statusCode": 404}', CORS, teapot), "application/json", "test")
    assert (response.status, response.body) == (418, b'{"tea": true}')


def test_a_header_the_method_response_declares_but_nothing_maps_is_not_sent():
    method = mock('{"statusCode": 200}', CORS, declared={"200": frozenset({"Access-Control-Allow-Origin",
                                                                          "Access-Control-Allow-Methods", "X-Extra"})})
    response = mock_response(method, None, "test")
    assert response.status == 200
    assert "X-Extra" not in {name for name, _ in response.headers}


def test_a_mock_whose_status_has_no_method_response_answers_500_and_logs_why(caplog):
    response = mock_response(mock('{"statusCode": 200}', CORS, declared={}), None, "test")
    assert response.status == 500
    assert "Output mapping refers to an invalid method response: 200" in caplog.text


def test_a_mock_mapping_a_header_its_method_response_does_not_declare_answers_500_and_logs_why(caplog):
    method = mock('{"statusCode": 200}', CORS, declared={"200": frozenset({"Access-Control-Allow-Origin"})})
    response = mock_response(method, None, "test")
    assert response.status == 500
    assert "method.response.header.Access-Control-Allow-Methods is not declared by the 200 method response" in caplog.text


@pytest.mark.parametrize("method", [
    mock('#set($x = 1){"statusCode": 200}', CORS),
    mock('{"statusCode": 200}', DeployedIntegrationResponse("200", None, {}, {"application/json": '{"id": "$context.requestId"}'})),
    mock('{"statusCode": 500}', DeployedIntegrationResponse("200", "2\\d\\d", {}, {})),
    mock('{"status": 200}', CORS),
    mock('{"statusCode": 200}', DeployedIntegrationResponse("200", None, {"method.response.header.X": "method.request.header.Origin"}, {})),
])
def test_a_mock_the_local_gateway_cannot_serve_answers_500(method):
    assert mock_response(method, None, "test").status == 500


# ---------------------------------------------------------------------------- snapshots

@mock_aws
def test_a_snapshot_keeps_the_api_as_it_was_at_deployment():
    from moto.apigateway.models import apigateway_backends

    apigw = boto3.client("apigateway", region_name="eu-west-1")
    api_id = apigw.create_rest_api(name="snap")["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    items = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="items")["id"]
    uri = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:f/invocations"
    apigw.put_method(restApiId=api_id, resourceId=items, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api_id, resourceId=items, httpMethod="GET", type="AWS_PROXY",
                          integrationHttpMethod="POST", uri=uri)
    deployment = apigw.create_deployment(restApiId=api_id, stageName="prod")["id"]
    snapshots = DeploymentSnapshots(apigateway_backends)
    snapshots.record(api_id, deployment)

    apigw.put_method(restApiId=api_id, resourceId=items, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(restApiId=api_id, resourceId=items, httpMethod="POST", type="AWS_PROXY",
                          integrationHttpMethod="POST", uri=uri)

    target = snapshots.resolve(api_id, "prod")
    assert (target.api.region, target.api_name, target.api.deployment_id) == ("eu-west-1", "snap", deployment)
    assert match_route(target.api, "GET", "/items").method.integration.uri == uri
    assert match_route(target.api, "POST", "/items") is None
    assert snapshots.resolve(api_id, "dev") is None
    assert snapshots.resolve("nosuchapi", "prod") is None


@mock_aws
def test_a_snapshot_keeps_each_methods_declared_response_headers():
    from moto.apigateway.models import apigateway_backends

    apigw = boto3.client("apigateway", region_name="eu-west-1")
    api_id = apigw.create_rest_api(name="snap")["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    where = {"restApiId": api_id, "resourceId": root, "httpMethod": "OPTIONS"}
    apigw.put_method(**where, authorizationType="NONE")
    apigw.put_integration(**where, type="MOCK", requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_method_response(**where, statusCode="200", responseParameters={"method.response.header.Access-Control-Allow-Origin": False})
    apigw.put_integration_response(**where, statusCode="200", responseTemplates={"application/json": ""},
                                   responseParameters={"method.response.header.Access-Control-Allow-Origin": "'*'"})
    deployment = apigw.create_deployment(restApiId=api_id, stageName="prod")["id"]
    snapshots = DeploymentSnapshots(apigateway_backends)
    snapshots.record(api_id, deployment)
    apigw.delete_method_response(**where, statusCode="200")  # not deployed: the stage keeps serving it

    method = match_route(snapshots.resolve(api_id, "prod").api, "OPTIONS", "/").method
    assert method.responses == {"200": frozenset({"Access-Control-Allow-Origin"})}
    assert mock_response(method, None, "test").headers[0] == ("Access-Control-Allow-Origin", "*")


# ---------------------------------------------------------------------------- metrics

class FakeCloudWatch:
    def __init__(self):
        self.calls = []

    def put_metric_data(self, namespace, metric_data):
        self.calls.append((namespace, metric_data))


def test_metrics_are_aggregated_per_api_stage_and_second():
    cloudwatch = FakeCloudWatch()
    publisher = MetricsBatcher({ACCOUNT: {"us-east-1": cloudwatch}})
    for status, integration_ms in ((200, 3.0), (404, 2.0), (502, 5.0), (403, None)):
        publisher.record(ACCOUNT, "us-east-1", "ItemsApi", "prod", status, 10.0, integration_ms)
    publisher.flush()
    metrics = {m["MetricName"]: m for _, data in cloudwatch.calls for m in data}
    assert {ns for ns, _ in cloudwatch.calls} == {"AWS/ApiGateway"}
    assert metrics["Count"]["Counts"] == [4]
    assert dict(zip(metrics["4XXError"]["Values"], metrics["4XXError"]["Counts"])) == {0: 2, 1: 2}
    assert dict(zip(metrics["5XXError"]["Values"], metrics["5XXError"]["Counts"])) == {0: 3, 1: 1}
    assert metrics["Latency"]["Values"] == [10.0] * 4
    assert metrics["IntegrationLatency"]["Values"] == [3.0, 2.0, 5.0]
    assert metrics["Count"]["Dimensions"] == [{"Name": "ApiName", "Value": "ItemsApi"}, {"Name": "Stage", "Value": "prod"}]
    publisher.flush()
    assert len(cloudwatch.calls) == 1  # nothing pending, nothing written
