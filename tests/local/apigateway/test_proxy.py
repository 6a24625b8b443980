"""The AWS_PROXY integration against a stand-in runtime: what API Gateway answers when the Lambda API
refuses an invocation (throttled: 500) or no local worker became free within the integration
timeout (504), and that the runtime is told that deadline."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from crudstack.local.apigateway.models import DeployedIntegration
from crudstack.local.apigateway.proxy import LambdaProxyInvoker
from crudstack.local.awslambda.models import InvokeResult

ACCOUNT, REGION = "123456789012", "us-east-1"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:demo-GetItemsFunction"
INTEGRATION = DeployedIntegration(
    type="AWS_PROXY", request_templates={}, responses=(), timeout_ms=29000,
    uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{FUNCTION}/invocations")
TARGET = SimpleNamespace(stage_variables={}, stage="prod",
                         api=SimpleNamespace(region=REGION, account_id=ACCOUNT, api_id="abc123"))
REQUEST = SimpleNamespace(http_method="GET")
METHOD = SimpleNamespace(resource_path="/items")
# A resource policy letting API Gateway invoke the function (no SourceArn: any API of the account).
POLICY = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                         "Action": "lambda:InvokeFunction", "Resource": FUNCTION}]}


class Backend:
    def get_function(self, name, qualifier=None):
        return SimpleNamespace(timeout=10)

    def get_policy(self, name, qualifier=None):
        return json.dumps({"Policy": json.dumps(POLICY)})


class Runtime:
    def __init__(self, result: InvokeResult):
        self.result = result
        self.deadlines: list[float] = []

    def invoke(self, function_arn_or_name, payload, *, region, account_id="", source="api", deadline=None):
        self.deadlines.append(deadline)
        return self.result


def refused(*, waited_out: bool) -> InvokeResult:
    reason = "ConcurrentInvocationLimitExceeded" if waited_out else "ReservedFunctionConcurrentInvocationLimitExceeded"
    return InvokeResult(payload=json.dumps({"Reason": reason}).encode(), function_error=None, timed_out=False,
                        throttled=True, duration_ms=0.0, request_id="r", throttle_reason=reason, waited_out=waited_out)


def invoke(runtime: Runtime):
    invoker = LambdaProxyInvoker(runtime, lambda_backend=lambda account, region: Backend())
    return invoker.invoke(INTEGRATION, TARGET, REQUEST, METHOD, {"httpMethod": "GET"}, "GET /items")


def test_a_throttled_invocation_is_api_gateways_internal_server_error():
    outcome = invoke(Runtime(refused(waited_out=False)))

    assert outcome.response.status == 500
    assert json.loads(outcome.response.body) == {"message": "Internal server error"}


def test_an_invocation_no_worker_took_within_the_integration_timeout_is_endpoint_request_timed_out():
    outcome = invoke(Runtime(refused(waited_out=True)))

    assert outcome.response.status == 504
    assert json.loads(outcome.response.body) == {"message": "Endpoint request timed out"}


def test_the_runtime_may_wait_for_a_worker_until_the_integration_timeout_and_no_longer():
    runtime = Runtime(InvokeResult(payload=b'{"statusCode": 200, "body": "[]"}', function_error=None, timed_out=False,
                                   throttled=False, duration_ms=1.0, request_id="r"))
    before = time.monotonic()

    outcome = invoke(runtime)

    after = time.monotonic()
    assert outcome.response.status == 200
    [deadline] = runtime.deadlines
    assert before + 29.0 <= deadline <= after + 29.0


def test_an_answer_that_came_after_the_integration_timeout_is_endpoint_request_timed_out():
    """Waiting for a worker and then running outlasted the integration timeout: API Gateway answers 504."""
    ok = InvokeResult(payload=b'{"statusCode": 200, "body": "[]"}', function_error=None, timed_out=False,
                      throttled=False, duration_ms=1.0, request_id="r")

    class Quick(Backend):  # a function timeout within the integration's: the call is made in this thread
        def get_function(self, name, qualifier=None):
            return SimpleNamespace(timeout=0)

    class Late(Runtime):
        def invoke(self, *args, **kwargs):
            time.sleep(0.01)  # longer than the 1 ms integration timeout below
            return super().invoke(*args, **kwargs)

    invoker = LambdaProxyInvoker(Late(ok), lambda_backend=lambda account, region: Quick())
    short = DeployedIntegration(type="AWS_PROXY", request_templates={}, responses=(), timeout_ms=1, uri=INTEGRATION.uri)
    outcome = invoker.invoke(short, TARGET, REQUEST, METHOD, {"httpMethod": "GET"}, "GET /items")

    assert outcome.response.status == 504
    assert json.loads(outcome.response.body) == {"message": "Endpoint request timed out"}


class RefusingRuntime(Runtime):
    """The real runtime's answer to an event over Lambda's 6 MB synchronous payload quota."""

    def invoke(self, function_arn_or_name, payload, *, region, account_id="", source="api", deadline=None):
        from crudstack.local.awslambda.exceptions import RequestTooLarge

        raise RequestTooLarge("Request must be smaller than 6291456 bytes for the Invoke operation")


def test_an_event_over_lambdas_payload_quota_is_a_413_not_a_500():
    # Issue 21: a 7 MB body passed the 10 MB front door, then the Lambda API refused its event and the
    # client got 500 (which counts as a 5XXError and can set the stack's alarm off).
    outcome = invoke(RefusingRuntime(refused(waited_out=False)))

    assert outcome.response.status == 413
    assert outcome.response.response_type == "REQUEST_TOO_LARGE"
    assert "6 MB" in json.loads(outcome.response.body)["message"]
