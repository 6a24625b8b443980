"""The gateway's own checks before the integration, on APIs built with boto3 under moto's mock:
API keys and usage plans, throttling (usage plan and stage), quotas, AWS_IAM, gateway responses.

A fake invoker stands in for Lambda; clocks are injected, so refills and new quota periods are
reached by moving them, never by sleeping.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import json
import pickle
import time

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws

from crudstack.local.apigateway.app import Gateway
from crudstack.local.apigateway.events import GatewayRequest, RequestIds
from crudstack.local.apigateway.models import DeploymentSnapshots
from crudstack.local.apigateway.proxy import InvocationOutcome
from crudstack.local.apigateway.responses import HttpResponse
from crudstack.local.apigateway.throttling import QuotaLimits, ThrottleLimits, ThrottleState, period_start
from crudstack.local.cloudwatch.metrics import MetricsBatcher

REGION = "us-east-1"
ACCOUNT = "123456789012"
URI = (f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
       f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f/invocations")
HOST = "127.0.0.1:4566"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeInvoker:
    """Answers 200 for every AWS_PROXY call and keeps the events it was given."""

    def __init__(self):
        self.events: list[dict] = []

    def invoke(self, integration, target, request, method, event, where):
        self.events.append(event)
        return InvocationOutcome(HttpResponse(200, [("Content-Type", "application/json")], b'{"ok": true}'), 1.0)


class Api:
    """An API like the tutorial's (GET /items by AWS_PROXY, OPTIONS /items by MOCK), deployed to prod."""

    def __init__(self, *, key_required: bool = False, authorization: str = "NONE"):
        from moto.apigateway.models import apigateway_backends

        self.apigw = boto3.client("apigateway", region_name=REGION)
        self.api_id = self.apigw.create_rest_api(name="ItemsApi")["id"]
        root = self.apigw.get_resources(restApiId=self.api_id)["items"][0]["id"]
        self.items = self.apigw.create_resource(restApiId=self.api_id, parentId=root, pathPart="items")["id"]
        where = {"restApiId": self.api_id, "resourceId": self.items}
        for method in ("GET", "POST"):
            self.apigw.put_method(**where, httpMethod=method, authorizationType=authorization, apiKeyRequired=key_required)
            self.apigw.put_integration(**where, httpMethod=method, type="AWS_PROXY", integrationHttpMethod="POST", uri=URI)
        options = {**where, "httpMethod": "OPTIONS"}
        self.apigw.put_method(**options, authorizationType="NONE", apiKeyRequired=False)
        self.apigw.put_integration(**options, type="MOCK", requestTemplates={"application/json": '{"statusCode": 200}'})
        self.apigw.put_method_response(**options, statusCode="200",
                                       responseParameters={"method.response.header.Access-Control-Allow-Origin": False})
        self.apigw.put_integration_response(**options, statusCode="200", responseTemplates={"application/json": ""},
                                            responseParameters={"method.response.header.Access-Control-Allow-Origin": "'*'"})
        self.snapshots = DeploymentSnapshots(apigateway_backends)
        self.clock, self.wall_clock = Clock(), Clock()
        self.invoker = FakeInvoker()
        self.gateway = Gateway(self.snapshots, self.invoker, throttling=ThrottleState(self.clock, self.wall_clock))
        self.deploy()

    def deploy(self) -> None:
        deployment = self.apigw.create_deployment(restApiId=self.api_id, stageName="prod")["id"]
        self.snapshots.record(self.api_id, deployment)

    def key(self, *, throttle=None, quota=None, enabled=True, stage="prod") -> str:
        """A new API key in a new usage plan for `stage`; returns the key's value."""
        key = self.apigw.create_api_key(name=f"key-{len(self.apigw.get_api_keys()['items'])}", enabled=enabled)
        plan = self.apigw.create_usage_plan(name=f"plan-{key['id']}", apiStages=[{"apiId": self.api_id, "stage": stage}],
                                            **({"throttle": throttle} if throttle else {}),
                                            **({"quota": quota} if quota else {}))
        self.apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
        return key["value"]

    def throttle_stage(self, rate: float, burst: int, scope: str = "*/*") -> None:
        self.apigw.update_stage(restApiId=self.api_id, stageName="prod", patchOperations=[
            {"op": "replace", "path": f"/{scope}/throttling/rateLimit", "value": str(rate)},
            {"op": "replace", "path": f"/{scope}/throttling/burstLimit", "value": str(burst)}])

    def call(self, method: str = "GET", path: str = "/items", headers=(), key: str | None = None,
             api_id: str | None = None) -> HttpResponse:
        headers = list(headers) + ([("x-api-key", key)] if key is not None else [])
        raw_uri = f"/restapis/{api_id or self.api_id}/prod/_user_request_{path}"
        request = GatewayRequest(http_method=method, api_id=api_id or self.api_id, stage="prod", path=path,
                                 query_string="", headers=tuple(headers), body=b"", source_ip="127.0.0.1",
                                 url_path=raw_uri, raw_uri=raw_uri)
        return self.gateway.handle(request, RequestIds.new())[0]

    def put_gateway_response(self, response_type: str, **settings) -> None:
        self.apigw.put_gateway_response(restApiId=self.api_id, responseType=response_type, **settings)


def body(response: HttpResponse) -> dict:
    return json.loads(response.body)


def header(response: HttpResponse, name: str) -> str | None:
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)


# ---------------------------------------------------------------------------- API keys

@mock_aws
def test_a_method_requiring_a_key_refuses_no_key_and_a_wrong_key_with_403_forbidden():
    api = Api(key_required=True)
    api.key()
    for response in (api.call(), api.call(key="not-a-key"), api.call(key="")):
        assert (response.status, response.body) == (403, b'{"message":"Forbidden"}')
        assert header(response, "x-amzn-ErrorType") == "ForbiddenException"
    assert api.invoker.events == []


@mock_aws
def test_the_right_key_reaches_the_integration_and_the_event_names_the_key():
    api = Api(key_required=True)
    value = api.key()
    response = api.call(headers=[("X-API-Key", value)])  # the header's name is not case-sensitive
    assert response.status == 200
    identity = api.invoker.events[0]["requestContext"]["identity"]
    assert identity["apiKey"] == value
    assert identity["apiKeyId"] == next(k["id"] for k in api.apigw.get_api_keys(includeValues=True)["items"] if k["value"] == value)


@mock_aws
def test_a_disabled_key_or_one_whose_plan_is_for_another_stage_is_forbidden():
    api = Api(key_required=True)
    disabled = api.key(enabled=False)
    elsewhere = api.key(stage="dev")
    assert api.call(key=disabled).status == 403
    assert api.call(key=elsewhere).status == 403


@mock_aws
def test_disabling_a_key_takes_effect_without_a_deployment():
    api = Api(key_required=True)
    value = api.key()
    assert api.call(key=value).status == 200
    key_id = api.apigw.get_api_keys()["items"][0]["id"]
    api.apigw.update_api_key(apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    assert api.call(key=value).status == 403


@mock_aws
def test_the_cors_preflight_needs_no_key():
    api = Api(key_required=True)
    response = api.call("OPTIONS")
    assert response.status == 200
    assert header(response, "Access-Control-Allow-Origin") == "*"


@mock_aws
def test_a_method_without_api_key_required_ignores_keys():
    api = Api(key_required=False)
    assert api.call().status == 200
    assert api.call(key="anything").status == 200


# ---------------------------------------------------------------------------- usage plan throttle and quota

@mock_aws
def test_a_usage_plan_throttles_its_key_with_a_token_bucket():
    api = Api(key_required=True)
    value = api.key(throttle={"rateLimit": 1.0, "burstLimit": 2})
    assert [api.call(key=value).status for _ in range(3)] == [200, 200, 429]
    throttled = api.call(key=value)
    assert body(throttled) == {"message": "Too Many Requests"}
    api.clock.now += 1.0          # one token a second
    assert [api.call(key=value).status for _ in range(2)] == [200, 429]
    api.clock.now += 60           # a long pause fills the bucket to its burst, no more
    assert [api.call(key=value).status for _ in range(3)] == [200, 200, 429]


@mock_aws
def test_each_key_has_its_own_bucket():
    api = Api(key_required=True)
    first, second = api.key(throttle={"rateLimit": 1.0, "burstLimit": 1}), api.key(throttle={"rateLimit": 1.0, "burstLimit": 1})
    assert [api.call(key=first).status, api.call(key=first).status, api.call(key=second).status] == [200, 429, 200]


@mock_aws
def test_a_quota_refuses_with_limit_exceeded_until_the_next_period():
    api = Api(key_required=True)
    api.wall_clock.now = calendar.timegm((2026, 3, 10, 23, 0, 0))
    value = api.key(quota={"limit": 2, "period": "DAY"})
    assert [api.call(key=value).status for _ in range(3)] == [200, 200, 429]
    exhausted = api.call(key=value)
    assert (exhausted.status, body(exhausted)) == (429, {"message": "Limit Exceeded"})
    api.wall_clock.now += 3600    # midnight UTC: a new day
    assert [api.call(key=value).status for _ in range(3)] == [200, 200, 429]


def test_quota_periods_start_at_midnight_utc_weeks_on_sunday_months_on_the_first():
    wednesday = calendar.timegm((2026, 3, 11, 15, 30, 0))
    assert period_start("DAY", wednesday) == calendar.timegm((2026, 3, 11, 0, 0, 0))
    assert period_start("WEEK", wednesday) == calendar.timegm((2026, 3, 8, 0, 0, 0))   # Sunday 8 March
    assert period_start("WEEK", calendar.timegm((2026, 3, 8, 0, 0, 1))) == calendar.timegm((2026, 3, 8, 0, 0, 0))
    assert period_start("MONTH", wednesday) == calendar.timegm((2026, 3, 1, 0, 0, 0))
    with pytest.raises(ValueError):
        period_start("YEAR", wednesday)


def test_a_quota_offset_is_subtracted_in_the_first_period_only():
    wall = Clock(calendar.timegm((2026, 3, 11, 12, 0, 0)))
    state = ThrottleState(Clock(), wall)
    quota = QuotaLimits(3, "DAY", offset=2)
    assert [state.count("k", quota) for _ in range(2)] == [True, False]
    wall.now += 86_400
    assert [state.count("k", quota) for _ in range(4)] == [True, True, True, False]


def test_a_bucket_whose_limits_change_keeps_its_tokens_up_to_the_new_burst():
    clock = Clock()
    state = ThrottleState(clock, Clock())
    assert all(state.take("b", ThrottleLimits(1.0, 5)) for _ in range(2))   # 3 tokens left
    assert [state.take("b", ThrottleLimits(1.0, 2)) for _ in range(3)] == [True, True, False]


def test_a_zero_burst_refuses_everything():
    state = ThrottleState(Clock(), Clock())
    assert state.take("b", ThrottleLimits(100.0, 0)) is False


# ---------------------------------------------------------------------------- stage throttling

@mock_aws
def test_the_stage_default_method_throttling_applies_to_each_method():
    api = Api()
    api.throttle_stage(rate=1, burst=1)
    assert [api.call().status, api.call().status] == [200, 429]
    assert api.call("POST").status == 200          # its own bucket
    api.clock.now += 1.0
    assert api.call().status == 200


@mock_aws
def test_a_methods_own_throttling_wins_over_the_stage_default():
    api = Api()
    api.throttle_stage(rate=1, burst=1)
    api.throttle_stage(rate=1, burst=3, scope="~1items/GET")
    assert [api.call().status for _ in range(4)] == [200, 200, 200, 429]
    assert [api.call("POST").status for _ in range(2)] == [200, 429]


@mock_aws
def test_a_refused_key_does_not_use_the_stages_tokens():
    # The API key is checked before the stage's throttling, as API Gateway orders its checks.
    api = Api(key_required=True)
    value = api.key()
    api.throttle_stage(rate=1, burst=1)
    assert api.call(key="wrong").status == 403
    assert api.call(key=value).status == 200
    assert api.call(key=value).status == 429


@mock_aws
def test_refused_requests_count_in_count_and_4xxerror():
    class Cloudwatch:
        def __init__(self):
            self.data = []

        def put_metric_data(self, namespace, data):
            self.data.extend(data)

    api = Api(key_required=True)
    cloudwatch = Cloudwatch()
    api.gateway.metrics = MetricsBatcher({ACCOUNT: {REGION: cloudwatch}})
    value = api.key(throttle={"rateLimit": 1.0, "burstLimit": 1})
    for headers in ([], [("x-api-key", value)], [("x-api-key", value)]):   # 403, 200, 429
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/restapis/{api.api_id}/prod/_user_request_/items",
                   "QUERY_STRING": "", "wsgi.input": io.BytesIO(b""),
                   **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers}}
        api.gateway(environ, lambda status, headers: None)
    api.gateway.metrics.flush()
    metrics = {m["MetricName"]: m for m in cloudwatch.data}
    assert metrics["Count"]["Counts"] == [3]
    assert dict(zip(metrics["4XXError"]["Values"], metrics["4XXError"]["Counts"])) == {0: 1, 1: 2}


# ---------------------------------------------------------------------------- gateway responses

CORS_HEADERS = {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
                "gatewayresponse.header.Access-Control-Allow-Headers": "'Content-Type,X-Api-Key,Authorization'"}


@mock_aws
def test_default_4xx_adds_its_headers_to_every_4xx_the_gateway_makes():
    api = Api(key_required=True)
    value = api.key(throttle={"rateLimit": 1.0, "burstLimit": 1}, quota={"limit": 1, "period": "DAY"})
    api.put_gateway_response("DEFAULT_4XX", responseParameters=CORS_HEADERS)
    api.deploy()
    refusals = [api.call(key="wrong"), api.call(path="/nothing"), api.call(key=value), api.call(key=value)]
    api.clock.now += 5
    refusals.append(api.call(key=value))
    assert [(r.status, body(r)["message"]) for r in refusals[:2] + refusals[3:]] == [
        (403, "Forbidden"), (403, "Missing Authentication Token"), (429, "Too Many Requests"), (429, "Limit Exceeded")]
    assert refusals[2].status == 200
    for response in refusals[:2] + refusals[3:]:
        assert header(response, "Access-Control-Allow-Origin") == "*"
        assert header(response, "Access-Control-Allow-Headers") == "Content-Type,X-Api-Key,Authorization"
        assert header(response, "Content-Type") == "application/json"


@mock_aws
def test_a_specific_gateway_response_wins_over_default_4xx_with_its_status_headers_and_template():
    api = Api(key_required=True)
    api.key()
    api.put_gateway_response("DEFAULT_4XX", statusCode="400", responseParameters=CORS_HEADERS)
    api.put_gateway_response("INVALID_API_KEY", statusCode="401",
                             responseParameters={"gatewayresponse.header.X-Request-Id": "method.request.header.X-Trace",
                                                 "gatewayresponse.header.X-Missing": "method.request.header.X-Absent"},
                             responseTemplates={"application/json": '{"error": $context.error.messageString, '
                                                                    '"type": "$context.error.responseType", '
                                                                    '"id": "$context.requestId", "stage": "$context.stage"}'})
    api.deploy()
    forbidden = api.call(key="wrong", headers=[("X-Trace", "t-1")])
    assert forbidden.status == 401
    assert header(forbidden, "X-Request-Id") == "t-1"
    assert header(forbidden, "X-Missing") is None
    assert header(forbidden, "Access-Control-Allow-Origin") is None     # DEFAULT_4XX does not add to it
    document = body(forbidden)
    assert (document["error"], document["type"], document["stage"]) == ("Forbidden", "INVALID_API_KEY", "prod")
    assert document["id"]
    # A type without a customization of its own takes DEFAULT_4XX's status code.
    missing = api.call(path="/nothing")
    assert (missing.status, body(missing), header(missing, "Access-Control-Allow-Origin")) == (
        400, {"message": "Missing Authentication Token"}, "*")


@mock_aws
def test_gateway_responses_take_effect_when_the_api_is_deployed_again():
    api = Api(key_required=True)
    api.put_gateway_response("DEFAULT_4XX", responseParameters=CORS_HEADERS)
    assert header(api.call(), "Access-Control-Allow-Origin") is None
    api.deploy()
    assert header(api.call(), "Access-Control-Allow-Origin") == "*"
    api.apigw.delete_gateway_response(restApiId=api.api_id, responseType="DEFAULT_4XX")
    assert header(api.call(), "Access-Control-Allow-Origin") == "*"


@mock_aws
def test_default_5xx_applies_to_the_gateways_5xx_and_not_to_4xx():
    api = Api()
    api.put_gateway_response("DEFAULT_5XX", responseParameters={"gatewayresponse.header.X-Five": "'5'"})
    api.deploy()

    def failing(*args):
        from crudstack.local.apigateway.responses import FUNCTION_ERROR, gateway_error
        return InvocationOutcome(gateway_error(*FUNCTION_ERROR), 1.0)

    api.invoker.invoke = failing
    failed = api.call()
    assert (failed.status, failed.body, header(failed, "X-Five")) == (502, b'{"message": "Internal server error"}', "5")
    assert header(api.call(path="/nothing"), "X-Five") is None


# ---------------------------------------------------------------------------- AWS_IAM

def signed(api: Api, access_key: str, secret: str, token: str | None = None, method: str = "GET", path: str = "/items",
           service: str = "execute-api", region: str = REGION) -> list[tuple[str, str]]:
    request = AWSRequest(method=method, url=f"http://{HOST}/restapis/{api.api_id}/prod/_user_request_{path}", data=b"")
    SigV4Auth(Credentials(access_key, secret, token), service, region).add_auth(request)
    return [("Host", HOST), *request.headers.items()]


def iam_user(policy: dict | None) -> tuple[str, str, str]:
    iam = boto3.client("iam", region_name=REGION)
    name = f"caller{len(iam.list_users()['Users'])}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="invoke", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"], arn


def invoke_policy(resource: str, effect: str = "Allow") -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}]}


@mock_aws
def test_aws_iam_without_a_signature_answers_missing_authentication_token():
    api = Api(authorization="AWS_IAM")
    response = api.call()
    assert (response.status, response.body) == (403, b'{"message":"Missing Authentication Token"}')
    assert header(response, "x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert api.invoker.events == []


@mock_aws
def test_aws_iam_lets_a_signed_request_through_when_a_policy_allows_it():
    api = Api(authorization="AWS_IAM")
    access_key, secret, arn = iam_user(invoke_policy(f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api.api_id}/*/GET/items"))
    assert api.call(headers=signed(api, access_key, secret)).status == 200
    identity = api.invoker.events[0]["requestContext"]["identity"]
    assert (identity["userArn"], identity["accessKey"], identity["accountId"]) == (arn, access_key, ACCOUNT)


@mock_aws
def test_aws_iam_refuses_a_caller_whose_policies_do_not_allow_the_method():
    api = Api(authorization="AWS_IAM")
    access_key, secret, arn = iam_user(invoke_policy(f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api.api_id}/*/GET/items"))
    refused = api.call("POST", headers=signed(api, access_key, secret, method="POST"))
    method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api.api_id}/prod/POST/items"
    assert refused.status == 403
    assert body(refused) == {"Message": f"User: {arn} is not authorized to perform: execute-api:Invoke on resource: {method_arn} "
                                        "because no identity-based policy allows the execute-api:Invoke action"}
    assert header(refused, "x-amzn-ErrorType") == "AccessDeniedException"


@mock_aws
def test_aws_iam_an_explicit_deny_wins_over_an_allow():
    api = Api(authorization="AWS_IAM")
    policy = invoke_policy("*")
    policy["Statement"].append({"Effect": "Deny", "Action": "execute-api:*", "Resource": f"arn:aws:execute-api:*:*:{api.api_id}/prod/*"})
    access_key, secret, _ = iam_user(policy)
    refused = api.call(headers=signed(api, access_key, secret))
    assert refused.status == 403
    assert body(refused)["Message"].endswith("with an explicit deny")


@mock_aws
def test_aws_iam_refuses_a_wrong_secret_an_unknown_key_and_a_tampered_request():
    api = Api(authorization="AWS_IAM")
    access_key, secret, _ = iam_user(invoke_policy("*"))
    bad = api.call(headers=signed(api, access_key, "not-the-secret"))
    assert bad.status == 403
    assert body(bad)["message"].startswith("The request signature we calculated does not match the signature you provided.")
    assert header(bad, "x-amzn-ErrorType") == "InvalidSignatureException"
    unknown = api.call(headers=signed(api, "AKIAUNKNOWNKEY000000", secret))
    assert (unknown.status, body(unknown)) == (403, {"message": "The security token included in the request is invalid."})
    assert header(unknown, "x-amzn-ErrorType") == "AccessDeniedException"
    tampered = api.call("POST", headers=signed(api, access_key, secret))   # signed as a GET
    assert tampered.status == 403 and "signature" in body(tampered)["message"]


@mock_aws
def test_aws_iam_refuses_an_incomplete_authorization_header_and_an_expired_signature():
    api = Api(authorization="AWS_IAM")
    access_key, secret, _ = iam_user(invoke_policy("*"))
    incomplete = api.call(headers=[("Authorization", "Bearer abc")])
    assert incomplete.status == 403 and "Authorization header requires 'Credential' parameter." in body(incomplete)["message"]
    headers = signed(api, access_key, secret)
    api.gateway.iam._clock = lambda: time.time() + 3600
    expired = api.call(headers=headers)
    assert expired.status == 403 and body(expired)["message"].startswith("Signature expired:")


@mock_aws
def test_aws_iam_refuses_a_request_replayed_more_than_five_minutes_after_it_was_signed():
    # Issue 21: the window was 15 minutes; SigV4's is five (docs.aws.amazon.com/IAM/latest/UserGuide/reference_aws-signing.html).
    api = Api(authorization="AWS_IAM")
    access_key, secret, _ = iam_user(invoke_policy("*"))
    headers = signed(api, access_key, secret)
    api.gateway.iam._clock = lambda: time.time() + 4 * 60
    assert api.call(headers=headers).status == 200
    api.gateway.iam._clock = lambda: time.time() + 6 * 60
    replayed = api.call(headers=headers)
    assert replayed.status == 403
    assert body(replayed)["message"].startswith("Signature expired:")
    assert body(replayed)["message"].endswith(" - 5 min.)")
    assert header(replayed, "x-amzn-ErrorType") == "InvalidSignatureException"
    assert len(api.invoker.events) == 1


@mock_aws
def test_aws_iam_refuses_a_request_signed_for_another_service_or_another_region():
    api = Api(authorization="AWS_IAM")
    access_key, secret, _ = iam_user(invoke_policy("*"))
    service = api.call(headers=signed(api, access_key, secret, service="lambda"))
    assert (service.status, body(service)) == (403, {"message": "Credential should be scoped to correct service: 'execute-api'. "})
    region = api.call(headers=signed(api, access_key, secret, region="eu-west-1"))
    assert (region.status, body(region)) == (403, {"message": "Credential should be scoped to a valid region, not 'eu-west-1'. "})
    garbage = api.call(headers=signed(api, access_key, secret, region="zz"))
    assert (garbage.status, body(garbage)) == (403, {"message": "Credential should be scoped to a valid region, not 'zz'. "})
    assert api.invoker.events == []


@mock_aws
def test_aws_iam_accepts_an_assumed_roles_session_with_its_token():
    api = Api(authorization="AWS_IAM")
    iam, sts = boto3.client("iam", region_name=REGION), boto3.client("sts", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                     "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName="caller-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="caller-role", PolicyName="invoke", PolicyDocument=json.dumps(invoke_policy("*")))
    session = sts.assume_role(RoleArn=role_arn, RoleSessionName="s1")["Credentials"]
    allowed = api.call(headers=signed(api, session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"]))
    assert allowed.status == 200
    assert api.invoker.events[0]["requestContext"]["identity"]["userArn"].endswith(":assumed-role/caller-role/s1")
    without_token = api.call(headers=signed(api, session["AccessKeyId"], session["SecretAccessKey"]))
    assert without_token.status == 403


@mock_aws
def test_aws_iam_accepts_the_local_default_credentials_as_the_accounts_root():
    api = Api(authorization="AWS_IAM")
    assert api.call(headers=signed(api, "testing", "testing", "testing")).status == 200
    assert api.call(headers=signed(api, "testing", "wrong")).status == 403


@mock_aws
def test_an_authorizer_type_the_local_gateway_does_not_serve_answers_500_not_the_integration(caplog):
    api = Api(authorization="CUSTOM")
    assert api.call().status == 500
    assert api.invoker.events == []
    assert "authorization type CUSTOM is not served" in caplog.text


def test_aws_iam_policy_evaluation_wildcards():
    from crudstack.local.apigateway.auth import verdict as evaluate

    arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc/prod/GET/items/42"
    assert evaluate([invoke_policy("arn:aws:execute-api:*:*:abc/*/GET/items/*")], "execute-api:Invoke", arn) == "Allow"
    assert evaluate([invoke_policy("arn:aws:execute-api:*:*:abc/*/POST/*")], "execute-api:Invoke", arn) is None
    assert evaluate([{"Statement": {"Effect": "Allow", "Action": "execute-api:*", "Resource": "*"}}],
                    "execute-api:Invoke", arn) == "Allow"
    assert evaluate([{"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]}],
                    "execute-api:Invoke", arn) == "Allow"
    conditioned = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                                  "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}
    assert evaluate([conditioned], "execute-api:Invoke", arn) is None


def test_period_start_is_utc():
    # Independent of the machine's time zone: 23:30 UTC on the 31st is still that month.
    moment = dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.timezone.utc).timestamp()
    assert period_start("MONTH", moment) == calendar.timegm((2026, 1, 1, 0, 0, 0))


@mock_aws
def test_a_deployment_saved_before_methods_had_auth_settings_still_loads_open_and_uncustomized():
    api = Api()
    deployed = api.snapshots.resolve(api.api_id, "prod").api
    method = api.snapshots.resolve(api.api_id, "prod").api.routes.literals["items"].methods["GET"]
    # What a snapshot written by the previous version holds: no such attributes at all.
    object.__delattr__(deployed, "gateway_responses")
    object.__delattr__(method, "authorization_type")
    object.__delattr__(method, "api_key_required")
    loaded = pickle.loads(pickle.dumps(deployed))
    assert loaded.gateway_responses == ()
    loaded_method = loaded.routes.literals["items"].methods["GET"]
    assert (loaded_method.authorization_type, loaded_method.api_key_required) == ("NONE", False)
