"""End to end over real HTTP on loopback: the local AWS in a subprocess, boto3 and plain HTTP clients.

The server runs with tests.support.fakes.FakeRuntime in place of the Lambda runtime, so every
integration outcome (success, crash, timeout, throttling...) can be produced on purpose.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import signal
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.local_server import ACCOUNT, REGION, function_zip, pid_alive, start_server, wait_until
from tests.support.fakes import PNG

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


class Stack:
    """A REST API built with boto3 the way the console tutorial builds one."""

    def __init__(self, server):
        self.server = server
        self.iam = server.client("iam")
        self.lam = server.client("lambda")
        self.apigw = server.client("apigateway")
        self.role_arn = self.iam.create_role(RoleName=f"role-{uuid.uuid4().hex[:8]}",
                                             AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
        self.api_id = self.apigw.create_rest_api(name=f"api-{uuid.uuid4().hex[:6]}")["id"]
        self.root_id = next(r["id"] for r in self.apigw.get_resources(restApiId=self.api_id)["items"] if r["path"] == "/")
        self.resources = {"/": self.root_id}

    def function(self, behaviour: str = "echo", timeout: int = 3, **env) -> str:
        name = f"fn-{behaviour}-{uuid.uuid4().hex[:6]}"
        return self.lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=self.role_arn, Handler="handler.handler",
            Code={"ZipFile": function_zip()}, Timeout=timeout,
            Environment={"Variables": {"FAKE_BEHAVIOUR": behaviour, **env}},
        )["FunctionArn"]

    def resource(self, path: str) -> str:
        if path not in self.resources:
            parent, _, part = path.rpartition("/")
            parent_id = self.resource(parent or "/")
            self.resources[path] = self.apigw.create_resource(restApiId=self.api_id, parentId=parent_id, pathPart=part)["id"]
        return self.resources[path]

    def route(self, method: str, path: str, function_arn: str, *, permit: str | None = "exact", **integration) -> None:
        resource_id = self.resource(path)
        self.apigw.put_method(restApiId=self.api_id, resourceId=resource_id, httpMethod=method, authorizationType="NONE")
        self.apigw.put_integration(
            restApiId=self.api_id, resourceId=resource_id, httpMethod=method, type="AWS_PROXY", integrationHttpMethod="POST",
            uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations", **integration)
        if permit is not None:
            source = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{self.api_id}/*/{method}{path}" if permit == "exact" else permit
            self.lam.add_permission(FunctionName=function_arn, StatementId=f"apigw-{uuid.uuid4().hex[:8]}",
                                    Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com", SourceArn=source)

    def deploy(self, stage: str = "prod") -> str:
        return self.apigw.create_deployment(restApiId=self.api_id, stageName=stage)["id"]

    def url(self, path: str, stage: str = "prod", form: str = "user_request") -> str:
        if form == "user_request":
            return f"{self.server.endpoint}/restapis/{self.api_id}/{stage}/_user_request_{path}"
        return f"{self.server.endpoint}/_aws/execute-api/{self.api_id}/{stage}{path}"


@pytest.fixture(scope="module")
def stack(server):
    stack = Stack(server)
    echo = stack.function("echo")
    stack.route("GET", "/items", echo)
    stack.route("POST", "/items", echo)
    stack.route("GET", "/items/{id}", echo, permit=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{stack.api_id}/*/GET/items/*")
    stack.deploy()
    return stack


@pytest.fixture(scope="module")
def web():
    with requests.Session() as session:
        yield session


def test_health_reports_status_pid_and_port(server):
    body = requests.get(f"{server.endpoint}/_localaws/health", timeout=5).json()
    assert body["status"] == "ok"
    assert body["pid"] == server.process.pid
    assert body["port"] == server.port


@pytest.mark.parametrize("form", ["user_request", "execute_api"])
def test_invoke_url_serves_the_deployed_route_in_both_url_forms(stack, web, form):
    response = web.get(stack.url("/items/42", form=form), timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Fake"] == "1"
    assert response.headers["Content-Length"] == str(len(response.content))
    assert response.headers["x-amzn-RequestId"]
    assert response.headers["X-Amzn-Trace-Id"].startswith("Root=1-")
    event = response.json()
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/42"
    assert event["pathParameters"] == {"id": "42"}
    # The path the client called, as on AWS: here that is the local URL form.
    assert event["requestContext"]["path"] == urlsplit(stack.url("/items/42", form=form)).path
    assert event["requestContext"]["requestId"] == response.headers["x-amzn-RequestId"]


def test_the_event_carries_query_headers_body_and_request_context(stack, web):
    response = web.post(stack.url("/items") + "?tag=a&tag=b&q=x%20y", data=json.dumps({"name": "Widget"}),
                         headers={"Content-Type": "application/json", "X-Custom": "v"}, timeout=10)
    assert response.status_code == 200
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    event = response.json()
    assert event["httpMethod"] == "POST"
    assert event["queryStringParameters"] == {"tag": "b", "q": "x y"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "q": ["x y"]}
    assert event["headers"]["X-Custom"] == "v"
    assert event["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert json.loads(event["body"]) == {"name": "Widget"}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["accountId"], context["apiId"], context["stage"]) == (ACCOUNT, stack.api_id, "prod")
    assert context["resourcePath"] == "/items"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"].startswith("python-requests/")
    assert isinstance(context["requestTimeEpoch"], int)


def test_a_get_without_query_or_body_has_null_collections(stack, web):
    event = web.get(stack.url("/items"), timeout=10).json()
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None


def test_changes_are_invisible_until_a_new_deployment(server, web):
    stack = Stack(server)
    echo = stack.function("echo")
    stack.route("GET", "/items", echo)
    stack.deploy()
    stack.route("GET", "/extra", echo)
    stack.apigw.delete_method(restApiId=stack.api_id, resourceId=stack.resource("/items"), httpMethod="GET")

    assert web.get(stack.url("/extra"), timeout=10).status_code == 403
    assert web.get(stack.url("/items"), timeout=10).status_code == 200  # still deployed

    stack.deploy()
    assert web.get(stack.url("/extra"), timeout=10).status_code == 200
    assert web.get(stack.url("/items"), timeout=10).status_code == 403


def test_a_stage_serves_the_deployment_it_points_to(server, web):
    stack = Stack(server)
    echo = stack.function("echo")
    stack.route("GET", "/v1", echo)
    first = stack.deploy()
    stack.route("GET", "/v2", echo)
    stack.deploy()
    assert web.get(stack.url("/v2"), timeout=10).status_code == 200

    stack.apigw.update_stage(restApiId=stack.api_id, stageName="prod",
                             patchOperations=[{"op": "replace", "path": "/deploymentId", "value": first}])
    assert web.get(stack.url("/v2"), timeout=10).status_code == 403
    assert web.get(stack.url("/v1"), timeout=10).status_code == 200


@pytest.mark.parametrize("method, path", [
    ("GET", "/nothing-here"),
    ("DELETE", "/items"),          # the resource exists, the method does not
    ("GET", "/items/1/deeper"),
])
def test_unknown_route_or_method_answers_403_missing_authentication_token(stack, web, method, path):
    response = web.request(method, stack.url(path), timeout=10)
    assert response.status_code == 403
    assert response.content == b'{"message":"Missing Authentication Token"}'
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_unknown_stage_or_api_answers_403_too(stack, web):
    assert web.get(stack.url("/items", stage="nope"), timeout=10).status_code == 403
    assert web.get(f"{stack.server.endpoint}/_aws/execute-api/nosuchapi/prod/items", timeout=10).status_code == 403


def test_missing_permission_answers_500_and_logs_the_reason(server, web):
    stack = Stack(server)
    unpermitted = stack.function("echo")
    stack.route("GET", "/secret", unpermitted, permit=None)
    stack.deploy()
    response = web.get(stack.url("/secret"), timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    assert wait_until(lambda: "Invalid permissions on Lambda function " + unpermitted in server.log)
    assert "no resource-based policy" in server.log


def test_a_permission_added_or_removed_is_seen_by_the_next_request(server, web):
    stack = Stack(server)
    echo = stack.function("echo")
    stack.route("GET", "/late", echo, permit=None)
    stack.deploy()
    assert web.get(stack.url("/late"), timeout=10).status_code == 500

    stack.lam.add_permission(FunctionName=echo, StatementId="late", Action="lambda:InvokeFunction",
                             Principal="apigateway.amazonaws.com",
                             SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{stack.api_id}/*/GET/late")
    assert web.get(stack.url("/late"), timeout=10).status_code == 200

    stack.lam.remove_permission(FunctionName=echo, StatementId="late")
    assert web.get(stack.url("/late"), timeout=10).status_code == 500


def test_a_deleted_function_is_seen_by_the_next_request(server, web):
    stack = Stack(server)
    echo = stack.function("echo")
    stack.route("GET", "/gone", echo)
    stack.deploy()
    assert web.get(stack.url("/gone"), timeout=10).status_code == 200

    stack.lam.delete_function(FunctionName=echo)
    assert web.get(stack.url("/gone"), timeout=10).status_code == 500


def test_a_permission_for_another_route_does_not_let_the_gateway_invoke(server, web):
    stack = Stack(server)
    fn = stack.function("echo")
    other = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{stack.api_id}/*/GET/other"
    stack.route("GET", "/mine", fn, permit=other)
    stack.deploy()
    assert web.get(stack.url("/mine"), timeout=10).status_code == 500
    assert wait_until(lambda: f"matches arn:aws:execute-api:{REGION}:{ACCOUNT}:{stack.api_id}/prod/GET/mine" in server.log)


@pytest.mark.parametrize("behaviour, status, body", [
    ("crash", 502, {"message": "Internal server error"}),
    ("malformed", 502, {"message": "Internal server error"}),
    ("timeout", 502, {"message": "Internal server error"}),   # timed out before the 29 s integration timeout
    ("throttle", 500, {"message": "Internal server error"}),  # AWS turns Lambda's 429 into a 500
])
def test_function_failures_map_to_what_api_gateway_answers(server, web, behaviour, status, body):
    stack = Stack(server)
    stack.route("GET", "/x", stack.function(behaviour))
    stack.deploy()
    response = web.get(stack.url("/x"), timeout=10)
    assert (response.status_code, response.json()) == (status, body)


def test_an_integration_timeout_answers_504(server, web):
    stack = Stack(server)
    slow = stack.function("sleep", timeout=5, FAKE_SLEEP_S="2")
    stack.route("GET", "/slow", slow, timeoutInMillis=300)
    stack.deploy()
    response = web.get(stack.url("/slow"), timeout=10)
    assert (response.status_code, response.json()) == (504, {"message": "Endpoint request timed out"})


def test_a_base64_result_is_sent_as_binary(server, web):
    stack = Stack(server)
    stack.route("GET", "/logo", stack.function("binary"))
    stack.deploy()
    response = web.get(stack.url("/logo"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content == PNG


def test_a_mock_integration_answers_a_cors_preflight(stack, web):
    apigw, resource_id = stack.apigw, stack.resource("/items")
    apigw.put_method(restApiId=stack.api_id, resourceId=resource_id, httpMethod="OPTIONS", authorizationType="NONE")
    apigw.put_integration(restApiId=stack.api_id, resourceId=resource_id, httpMethod="OPTIONS", type="MOCK",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_method_response(restApiId=stack.api_id, resourceId=resource_id, httpMethod="OPTIONS", statusCode="200",
                              responseParameters={"method.response.header.Access-Control-Allow-Origin": False,
                                                  "method.response.header.Access-Control-Allow-Methods": False})
    apigw.put_integration_response(restApiId=stack.api_id, resourceId=resource_id, httpMethod="OPTIONS", statusCode="200",
                                   responseParameters={"method.response.header.Access-Control-Allow-Origin": "'*'",
                                                       "method.response.header.Access-Control-Allow-Methods": "'GET,POST,OPTIONS'"},
                                   responseTemplates={"application/json": ""})
    stack.deploy()
    response = web.options(stack.url("/items"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert response.content == b""


def test_the_tutorials_aws_managed_policies_exist_so_a_role_can_attach_them(server):
    iam = server.client("iam")
    iam.create_role(RoleName="tutorial-managed", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    for policy in ("AmazonDynamoDBFullAccess", "CloudWatchFullAccess"):
        iam.attach_role_policy(RoleName="tutorial-managed", PolicyArn=f"arn:aws:iam::aws:policy/{policy}")

    attached = iam.list_attached_role_policies(RoleName="tutorial-managed")["AttachedPolicies"]
    assert sorted(p["PolicyName"] for p in attached) == ["AmazonDynamoDBFullAccess", "CloudWatchFullAccess"]


def test_the_lambda_invoke_api_reaches_the_runtime(server):
    stack = Stack(server)
    arn = stack.function("raw")
    response = stack.lam.invoke(FunctionName=arn, Payload=b'{"hello": "world"}')
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-fake-runtime"] == "1"
    assert json.loads(response["Payload"].read()) == {"hello": "world"}


def test_keep_alive_reuses_one_connection_for_gateway_moto_and_health(stack):
    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=10)
    try:
        conn.request("GET", f"/restapis/{stack.api_id}/prod/_user_request_/items")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        assert sock is not None and first.status == 200
        for path in (f"/_aws/execute-api/{stack.api_id}/prod/items/7", "/_localaws/health",
                     f"/restapis/{stack.api_id}/prod/_user_request_/missing"):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.getheader("Connection") is None
            assert conn.sock is sock, f"the connection was closed after {path}"
        # moto's own API over the same connection (refused unsigned: the connection stays open all the same)
        conn.request("GET", "/moto-api/data.json")
        conn.getresponse().read()
        assert conn.sock is sock
    finally:
        conn.close()


def test_a_chunked_request_body_is_read_whole_and_the_connection_stays_usable(stack):
    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=10)
    try:
        conn.request("POST", f"/restapis/{stack.api_id}/prod/_user_request_/items", body=iter([b'{"name": ', b'"chunked"}']),
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(json.loads(response.read())["body"]) == {"name": "chunked"}
        conn.request("GET", "/_localaws/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_api_gateway_metrics_reach_cloudwatch(server, web):
    stack = Stack(server)
    stack.route("GET", "/counted", stack.function("echo"))
    stack.deploy()
    for _ in range(3):
        assert web.get(stack.url("/counted"), timeout=10).status_code == 200
    assert web.get(stack.url("/not-counted-route"), timeout=10).status_code == 403
    api_name = stack.apigw.get_rest_api(restApiId=stack.api_id)["name"]
    cloudwatch = server.client("cloudwatch")
    now = dt.datetime.now(dt.timezone.utc)

    def statistic(metric: str, stat: str = "Sum"):
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApiGateway", MetricName=metric, Statistics=[stat], Period=60,
            StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=5),
            Dimensions=[{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": "prod"}])["Datapoints"]
        return sum(p[stat] for p in points) if points else None

    assert wait_until(lambda: statistic("Count") == 4, timeout=10)
    assert statistic("4XXError") == 1
    assert statistic("5XXError") == 0
    assert statistic("IntegrationLatency", "SampleCount") == 3
    assert statistic("Latency", "SampleCount") == 4


def test_sigterm_stops_the_server_and_its_runtime_without_terminal_output(tmp_path):
    running = start_server(tmp_path / "state")
    try:
        worker_pid = int((running.state_dir / "fake-worker.pid").read_text())
        assert pid_alive(worker_pid)
        with requests.Session() as session:
            for path in ("/_localaws/health", "/_aws/execute-api/none/prod/x", "/moto-api/data.json"):
                session.get(running.endpoint + path, timeout=10)
        running.client("sts").get_caller_identity()  # one boto3 call through moto
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=15) == 0
    finally:
        running.stop()
    assert wait_until(lambda: not pid_alive(worker_pid), timeout=10)
    assert not (running.state_dir / "server.json").exists()
    assert running.stdout.read_text() == ""
    assert running.stderr.read_text() == ""
    assert "fake runtime shut down" in running.log


GET_ITEM_HANDLER = '''import json, os
import boto3
table = boto3.resource("dynamodb").Table(os.environ["TABLE"])

def handler(event, context):
    item = table.get_item(Key={"id": event["pathParameters"]["id"]}).get("Item")
    return {"statusCode": 200 if item else 404, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"item": item, "resource": event["resource"]})}
'''


def test_the_real_runtime_serves_a_handler_reading_dynamodb_and_sigterm_leaves_no_process(tmp_path):
    running = start_server(tmp_path / "state", module="crudstack.local.server")
    try:
        stack = Stack(running)
        dynamodb = running.client("dynamodb")
        dynamodb.create_table(TableName="items", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        dynamodb.put_item(TableName="items", Item={"id": {"S": "42"}, "name": {"S": "Widget"}})
        # The handler runs as the role's session, and the local AWS checks its policy (tests/local/iam).
        stack.iam.put_role_policy(RoleName=stack.role_arn.rsplit("/", 1)[1], PolicyName="read-items", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem",
                                                     "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/items"}]}))
        arn = stack.lam.create_function(
            FunctionName="get-item", Runtime="python3.12", Role=stack.role_arn, Handler="handler.handler",
            Code={"ZipFile": function_zip(GET_ITEM_HANDLER)}, Environment={"Variables": {"TABLE": "items"}},
        )["FunctionArn"]
        stack.route("GET", "/items/{id}", arn, permit=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{stack.api_id}/*/GET/items/*")
        stack.deploy()

        with requests.Session() as web:
            found = web.get(stack.url("/items/42"), timeout=30)
            missing = web.get(stack.url("/items/43", form="execute_api"), timeout=30)
        assert (found.status_code, found.json()) == (200, {"item": {"id": "42", "name": "Widget"}, "resource": "/items/{id}"})
        assert (missing.status_code, missing.json()["item"]) == (404, None)

        children = [int(pid) for pid in (Path(f"/proc/{running.process.pid}/task/{running.process.pid}/children")
                                         .read_text().split())]
        assert children, "the runtime should have started a worker process"
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=15) == 0
    finally:
        running.stop()
    assert wait_until(lambda: not any(pid_alive(pid) for pid in children), timeout=10)
    assert running.stdout.read_text() == "" and running.stderr.read_text() == ""


def race_conditional_updates(app, rounds: int, writers: int = 20) -> list[int]:
    """Serve `app` on loopback and, each round, send `writers` updates of one item at once, all
    conditioned on its version being 1; return how many succeeded in each round."""
    import sys
    import threading

    import boto3

    from crudstack.local.server.httpserver import LocalAwsHTTPServer

    httpd = LocalAwsHTTPServer("127.0.0.1", 0, app)
    serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within a few rounds
    try:
        def client():
            return boto3.client("dynamodb", region_name=REGION, endpoint_url=f"http://127.0.0.1:{httpd.server_address[1]}",
                                aws_access_key_id="testing", aws_secret_access_key="testing")

        table = f"race-{uuid.uuid4().hex[:8]}"
        admin = client()
        admin.create_table(TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        clients = [client() for _ in range(writers)]
        wins_per_round = []
        for _ in range(rounds):
            admin.put_item(TableName=table, Item={"id": {"S": "x"}, "version": {"N": "1"}})
            wins: list[int] = []
            start = threading.Barrier(writers)

            def write(c):
                start.wait()
                try:
                    c.update_item(TableName=table, Key={"id": {"S": "x"}}, UpdateExpression="SET version = version + :one",
                                  ConditionExpression="version = :one", ExpressionAttributeValues={":one": {"N": "1"}})
                    wins.append(1)
                except c.exceptions.ConditionalCheckFailedException:
                    pass

            threads = [threading.Thread(target=write, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wins_per_round.append(len(wins))
        return wins_per_round
    finally:
        sys.setswitchinterval(interval)
        httpd.shutdown()
        httpd.server_close()


def test_conditional_dynamodb_writes_racing_on_one_item_let_exactly_one_win():
    from crudstack.local.dynamodb.atomicity import DynamoDBItemAtomicity
    from crudstack.local.patches import configure_moto
    from crudstack.local.server.serve import build_moto_app

    configure_moto()
    wins = race_conditional_updates(DynamoDBItemAtomicity(build_moto_app()), rounds=15)

    assert wins == [1] * 15
