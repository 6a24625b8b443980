"""Fault injection (crudstack/chaos.py): each fault as botocore surfaces it for that service,
reproducible from a seed; whole runs at 20% of calls failing converge to a clean run's state;
a permanent refusal fails at once, naming the step and the resource.

The 20% runs here are a sampled subset (3 seeds); the 50-seed figure comes from
bench/reliability.py (see RELIABILITY.md)."""

from __future__ import annotations

import re

import botocore.exceptions
import pytest

from crudstack.aws import Aws, is_transient
from crudstack.chaos import FAULTS, Chaos, ChaosSpec
from crudstack.errors import DeploymentError
from crudstack.plan import Options
from tests.functional.conftest import REGION
from tests.stack_state import differences, duplicates, inventory, left_over, state

CODE = {"ZipFile": b"PK\x05\x06" + b"\0" * 18}   # an empty zip: the fault answers before AWS reads it


def one_call(fault: str, service: str, operation: str, **params) -> tuple[BaseException, Aws]:
    """The error one call gets when `fault` hits every call of `operation` (and nothing is retried)."""
    aws = Aws(region=REGION, max_attempts=1, sleep=lambda s: None)
    client = aws.client(service)
    spec = ChaosSpec(rate=1.0, seed=1, faults=(fault,), calls=frozenset({client.meta.method_to_api_mapping[operation]}))
    Chaos(spec).attach(aws)
    with pytest.raises(Exception) as raised:
        aws.call(getattr(client, operation), **params)
    return raised.value, aws


TABLE = {"TableName": "t", "BillingMode": "PAY_PER_REQUEST", "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
         "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}
SHAPES = [
    # (fault, service, operation, params, (code, status) or exception class)
    ("throttling", "dynamodb", "create_table", TABLE, ("ThrottlingException", 400)),
    ("throttling", "iam", "list_roles", {}, ("Throttling", 400)),
    ("throttling", "lambda", "list_functions", {}, ("TooManyRequestsException", 429)),
    ("throttling", "apigateway", "get_rest_apis", {}, ("TooManyRequestsException", 429)),
    ("throttling", "cloudwatch", "describe_alarms", {}, ("Throttling", 400)),
    ("throttling", "sns", "list_topics", {}, ("Throttled", 429)),
    ("server-error", "iam", "get_role", {"RoleName": "r"}, ("ServiceFailure", 500)),
    ("server-error", "lambda", "get_function", {"FunctionName": "f"}, ("ServiceException", 500)),
    ("update-in-progress", "lambda", "update_function_configuration", {"FunctionName": "demo-F", "MemorySize": 256},
     ("ResourceConflictException", 409)),
    ("update-in-progress", "lambda", "add_permission", {"FunctionName": "demo-F", "StatementId": "s", "Action": "lambda:InvokeFunction",
                                                         "Principal": "apigateway.amazonaws.com"}, ("ResourceConflictException", 409)),
    ("role-propagation", "lambda", "create_function", {"FunctionName": "demo-F", "Role": "arn:aws:iam::123456789012:role/r",
                                                        "Runtime": "python3.12", "Handler": "a.h", "Code": CODE},
     ("InvalidParameterValueException", 400)),
    ("access-denied", "iam", "create_role", {"RoleName": "r", "AssumeRolePolicyDocument": "{}"}, ("AccessDenied", 403)),
    ("access-denied", "dynamodb", "create_table", TABLE, ("AccessDeniedException", 400)),
    ("access-denied", "sns", "create_topic", {"Name": "t"}, ("AuthorizationError", 403)),
    ("connection-refused", "dynamodb", "list_tables", {}, botocore.exceptions.EndpointConnectionError),
]


@pytest.mark.parametrize(("fault", "service", "operation", "params", "expected"), SHAPES,
                         ids=[f"{s[0]}-{s[1]}.{s[2]}" for s in SHAPES])
def test_each_fault_is_raised_the_way_botocore_raises_that_services_own_error(fault, service, operation, params, expected):
    error, aws = one_call(fault, service, operation, **params)

    if isinstance(expected, tuple):
        code, status = expected
        assert isinstance(error, aws.client(service).exceptions.ClientError)
        assert error.response["Error"]["Code"] == code
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert error.response["Error"]["Message"].endswith("(injected by --chaos)")
        modelled = getattr(aws.client(service).exceptions, code, None)
        if modelled is not None:   # the service's own exception class, as botocore builds it from the code
            assert isinstance(error, modelled)
    else:
        assert isinstance(error, expected)
    assert is_transient(error) is FAULTS[fault].transient


@pytest.mark.parametrize("fault", ["read-timeout", "connection-reset"])
def test_a_lost_answer_comes_after_aws_did_the_work(fault, aws_clients):
    # connection-reset loses the answer half the time; find a seed where it does.
    spec_seed = next(seed for seed in range(50) if Chaos(ChaosSpec(1.0, seed, (fault,))).decide("dynamodb", "CreateTable")[1])
    aws = Aws(region=REGION, max_attempts=1)
    Chaos(ChaosSpec(1.0, spec_seed, (fault,), frozenset({"CreateTable"}))).attach(aws)

    with pytest.raises(botocore.exceptions.HTTPClientError) as raised:
        aws.call(aws.client("dynamodb").create_table, **TABLE)

    assert type(raised.value).__name__ == {"read-timeout": "ReadTimeoutError", "connection-reset": "ConnectionClosedError"}[fault]
    assert aws_clients.dynamodb.list_tables()["TableNames"] == ["t"]   # made, though we never heard


def test_a_fault_is_drawn_only_where_aws_could_answer_it():
    chaos = Chaos(ChaosSpec(rate=1.0, seed=3, faults=("update-in-progress", "role-propagation")))

    assert chaos.decide("dynamodb", "CreateTable") is None
    assert chaos.decide("lambda", "GetFunction") is None
    assert chaos.decide("lambda", "UpdateFunctionCode") == ("update-in-progress", False)
    assert chaos.decide("lambda", "CreateFunction") == ("role-propagation", False)


def test_the_same_seed_fails_the_same_calls_of_each_kind_whatever_else_comes_between():
    first, second = Chaos(ChaosSpec(0.3, 11)), Chaos(ChaosSpec(0.3, 11))
    tables = [first.decide("dynamodb", "DescribeTable") for _ in range(40)]
    interleaved = []
    for _ in range(40):
        second.decide("iam", "GetRole")   # other calls in between do not shift the table's faults
        interleaved.append(second.decide("dynamodb", "DescribeTable"))

    assert tables == interleaved
    assert sum(1 for d in tables if d) >= 5
    other = Chaos(ChaosSpec(0.3, 12))
    assert [other.decide("dynamodb", "DescribeTable") for _ in range(40)] != tables


def test_only_the_chosen_calls_fail():
    chaos = Chaos(ChaosSpec(rate=1.0, seed=1, calls=frozenset({"CreateRole"})))

    assert chaos.decide("iam", "GetRole") is None
    assert chaos.decide("iam", "CreateRole") is not None
    assert dict(chaos.calls) == {"CreateRole": 1}


# -- whole runs --------------------------------------------------------------------------------------------


@pytest.fixture
def account(boto_session):
    return lambda service: boto_session.client(service, region_name=REGION)


@pytest.fixture
def clean_state(provision, teardown, config, account):
    """The state a clean provision leaves (made and torn down first, in this test's own account)."""
    provision(config)
    clean = state(account)
    teardown(config, options=Options(delete_data=True))
    assert left_over(inventory(account)) == {}
    return clean


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_at_20_percent_faults_provision_converges_to_a_clean_runs_state_and_teardown_leaves_nothing(
        seed, clean_state, provision, teardown, config, account):
    chaos = Chaos(ChaosSpec(rate=0.2, seed=seed))

    run = provision(config, attach=chaos.attach)

    assert len(chaos.injected) >= 10
    assert run.aws.stats.retries == len(chaos.injected)   # every fault retried, none let through
    assert differences(state(account), clean_state) == []
    assert duplicates(inventory(account)) == {}
    down = Chaos(ChaosSpec(rate=0.2, seed=seed + 100))
    teardown(config, options=Options(delete_data=True), attach=down.attach)
    assert len(down.injected) >= 3
    assert left_over(inventory(account)) == {}


ACCESS_DENIED = [
    # (operation, step, resource)
    ("DescribeTable", "Step 1 DynamoDB table", "table demo-ItemsTable"),
    ("CreateTable", "Step 1 DynamoDB table", "table demo-ItemsTable"),
    ("CreateRole", "Step 2 IAM role", "role demo-LambdaDynamoDBRole"),
    ("PutRolePolicy", "Step 2 IAM role", "inline policy demo-items-access"),
    ("CreateFunction", "Step 3 Lambda functions", "function demo-CreateItemFunction"),
    ("CreateRestApi", "Step 4 API Gateway REST API", "REST API demo-ItemsApi"),
    ("PutIntegration", "Step 4 API Gateway REST API", "method GET /items"),
    ("CreateDeployment", "Step 5 Deploy to stage", "deployment demo-ItemsApi/prod"),
    ("CreateLogGroup", "Step 7 Monitoring: logs, alerts, alarms", "log group /aws/lambda/demo-CreateItemFunction"),
    ("CreateTopic", "Step 7 Monitoring: logs, alerts, alarms", "SNS topic demo-ItemsApiAlerts"),
    ("PutMetricAlarm", "Step 7 Monitoring: logs, alerts, alarms", "alarm demo-CreateItemFunction-Errors"),
]


@pytest.mark.parametrize(("operation", "step", "resource"), ACCESS_DENIED, ids=[a[0] for a in ACCESS_DENIED])
def test_access_denied_on_every_call_of_one_kind_fails_at_once_naming_the_step_and_resource(
        operation, step, resource, provision, config, sleeps):
    chaos = Chaos(ChaosSpec(rate=1.0, seed=1, faults=("access-denied",), calls=frozenset({operation})))

    runs = []
    with pytest.raises(DeploymentError) as raised:
        provision(config, attach=chaos.attach, run_out=runs)

    # Tried once, no backoff: each call of that kind once (several run at once, e.g. five functions).
    assert chaos.calls[operation] >= 1 and runs[0].aws.stats.retries == 0
    assert sorted(sleeps) == sorted(runs[0].aws.limiter.waits)   # none but the quota limiter's
    assert (raised.value.step, raised.value.resource) == (step, resource)
    assert f"{operation} failed: " in raised.value.cause and "not authorized" in raised.value.cause
    assert f", which {operation} needs" in raised.value.fix   # the IAM action is named first


# -- the dev option: --chaos and CRUDSTACK_CHAOS --------------------------------------------------------------


def test_provision_with_chaos_retries_every_fault_reports_them_and_repeats_them_from_the_seed(cli, tmp_path, capsys):
    from crudstack.cli import provision_main

    code, doc, err = cli(provision_main, "--chaos", "0.3", "--chaos-seed", "4", "--json", "--outputs", str(tmp_path / "out"),
                         capsys=capsys)

    assert code == 0
    assert doc["chaos"]["seed"] == 4 and doc["chaos"]["injected"] >= 10
    assert doc["aws_calls"]["retries"] == doc["chaos"]["injected"]
    assert "warning: chaos: 30% of AWS calls fail on purpose (seed 4;" in err
    assert f"Chaos: {doc['chaos']['injected']} of {doc['chaos']['calls']} AWS calls failed on purpose" in err
    assert "--chaos 0.3 --chaos-seed 4 repeats them" in err


def test_teardown_takes_chaos_from_the_environment(cli, tmp_path, capsys, monkeypatch):
    from crudstack.cli import provision_main, teardown_main

    assert cli(provision_main, "--quiet", "--outputs", str(tmp_path / "out"), capsys=capsys)[0] == 0
    monkeypatch.setenv("CRUDSTACK_CHAOS", "0.5")
    monkeypatch.setenv("CRUDSTACK_CHAOS_SEED", "9")
    monkeypatch.setenv("CRUDSTACK_CHAOS_FAULTS", "throttling,read-timeout")

    code, doc, err = cli(teardown_main, "--yes", "--json", capsys=capsys)

    assert code == 0
    assert doc["chaos"]["seed"] == 9 and set(doc["chaos"]["by_fault"]) <= {"throttling", "read-timeout"}
    assert doc["chaos"]["injected"] >= 5


def test_chaos_of_access_denied_on_one_call_kind_exits_1_at_once_naming_step_and_resource(cli, tmp_path, capsys):
    from crudstack.cli import provision_main

    code, _, err = cli(provision_main, "--chaos", "1", "--chaos-faults", "access-denied", "--chaos-calls", "create_function",
                       "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 1
    assert "error: Step 3 Lambda functions: function demo-CreateItemFunction: CreateFunction failed: AccessDeniedException" in err
    # Every function's create is refused once (they run at once), and none is retried.
    failed = re.search(r"Chaos: (\d+) of (\d+) AWS calls failed on purpose \((\d+) access-denied\)", err)
    assert failed and failed[1] == failed[2] == failed[3] and 1 <= int(failed[1]) <= 5
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--chaos", "lots"], "--chaos: found 'lots', expected the share of AWS calls to fail"),
    (["--chaos", "1.5"], "--chaos: found '1.5', expected"),
    (["--chaos", "0.2", "--chaos-seed", "x"], "--chaos-seed: found 'x', expected a whole number"),
    (["--chaos", "0.2", "--chaos-faults", "throttle"], "--chaos-faults: unknown fault 'throttle'; did you mean 'throttling'?"),
    (["--chaos", "0.2", "--chaos-calls", "CreateRoles"], "--chaos-calls: 'CreateRoles' is not an operation of dynamodb"),
    (["--chaos-seed", "3"], "--chaos-seed: given without --chaos RATE"),
])
def test_bad_chaos_options_exit_2_naming_the_option_before_any_aws_call(args, message, cli, tmp_path, capsys, monkeypatch):
    import crudstack.cli
    from crudstack.cli import provision_main

    monkeypatch.setattr(crudstack.cli, "connect", lambda *a: pytest.fail("connected to AWS despite bad options"))

    code, _, err = cli(provision_main, *args, "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 2
    assert "error: arguments is not valid" in err and message in err
