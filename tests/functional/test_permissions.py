"""The deployer policy (crudstack/permissions.py, deployer-policy.json) is sufficient and minimal.

Sufficient: an IAM user holding only that policy provisions, re-runs (0 writes), ships a code change
and tears down (--backup of a table holding an item) with moto's IAM enforcement on. Minimal: with
any one statement removed, that cycle fails with a DeploymentError naming one of its actions.

What moto 5.2.1 enforces in-process (read in moto/core/authorization.py and moto/iam/access_control.py,
and seen in probes here):
  - It is off by default; `moto.core.authorization.enable_iam_authentication()` (what
    `set_initial_no_auth_action_count(0)` does around one function) sets settings.INITIAL_NO_AUTH_ACTION_COUNT
    to 0 and restarts moto's request count, so every request after it is authenticated: its access
    key must belong to an IAM user moto knows (else InvalidClientTokenId) and its SigV4 signature must match.
  - The action it checks is "<signing name>:<botocore operation name>": "lambda:GetFunction",
    "monitoring:DescribeAlarms" (CloudWatch signs as "monitoring", where IAM says "cloudwatch:"), and
    "apigateway:CreateRestApi" where IAM has HTTP verbs ("apigateway:POST" on /restapis). So the
    policy the test user holds is `moto_view(policy)`: each statement with its IAM actions replaced
    by the operations that need them (OPERATIONS, the same table the policy is built from).
  - Resource: only IAM (and STS AssumeRole) requests carry a resource, the role's ARN when the role
    exists; every other service, and IAM calls about a role not made yet, are checked against "*",
    which a scoped Resource such as "arn:aws:dynamodb:...:table/demo-*" never matches. So moto_view
    puts "*" in every Resource, and scoping is shown only where moto can: the role statement's Resource
    is kept in test_the_role_statement_lets_the_deployer_at_its_own_role_and_not_another_stacks.
  - Condition: identity-policy conditions are never evaluated (no request context is passed to
    them), so the iam:PassedToService condition can be neither shown needed nor shown harmful.
  - Only the call's own action is checked, never the extra ones AWS checks: iam:PassRole on
    CreateFunction, the tag permission of a create with Tags (lambda:TagResource, iam:TagRole, ...),
    lambda:ListTags on GetFunction. These are in the policy from AWS's documentation (cited in
    crudstack/permissions.py) and checked here only on paper (every call's needs are in the policy).
  - sts:GetCallerIdentity is always allowed.
  - A moto bug: the SigV4 payload hash of a request without a body (Lambda and API Gateway GETs) is
    computed over moto's header dict instead of the empty body, so such requests fail with
    SignatureDoesNotMatch whatever the policy. `iam_enforced` patches that one computation.

Statements moto cannot show necessary are NOT_ENFORCED_BY_MOTO below: their removal test is skipped
with the reason when the cycle succeeds without them, and fails (asking to take them off the list)
once moto, or a newly merged call, makes them needed.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from moto.core.authorization import enable_iam_authentication

from crudstack.aws import Aws
from crudstack.config import ROOT, load_config
from crudstack.errors import DeploymentError
from crudstack.permissions import OPERATIONS, deployer_policy, statement_for
from crudstack.plan import Context, Options
from crudstack.runner import Reporter, run
from tests.functional.conftest import REGION, ReusedClients

DEFAULT_POLICY = deployer_policy(load_config(ROOT / "config.yaml"))
SIDS = [s["Sid"] for s in DEFAULT_POLICY["Statement"]]

# Statement -> why moto cannot show it is needed. Each holds only actions moto never checks.
NOT_ENFORCED_BY_MOTO = {
    "PassOnlyThisStacksRoleToLambda": "moto never checks iam:PassRole (an extra action of CreateFunction and UpdateFunctionConfiguration)",
    "TagRestApisAndStagesOnCreate": "moto never checks the tag-on-create action (apigateway:PUT on /tags/*) of CreateRestApi "
                                    "and CreateStage, and the cycle changes no tags, so TagResource is not called",
}


# -- the policy on paper ---------------------------------------------------------------------------------


def test_the_shipped_deployer_policy_is_the_one_generated_for_the_default_config():
    shipped = json.loads((ROOT / "deployer-policy.json").read_text(encoding="utf-8"))

    assert shipped == DEFAULT_POLICY, "regenerate it: python provision.py --deployer-policy > deployer-policy.json"
    assert load_config(ROOT / "config.yaml").stack == "demo"


def test_the_policy_fits_in_a_customer_managed_policy():
    # IAM quotas: a managed policy may hold 6,144 characters, white space not counted (an inline user
    # policy only 2,048, which is why docs/real-account.md attaches it as a managed policy).
    compact = json.dumps(DEFAULT_POLICY, separators=(",", ":"))
    assert len(re.sub(r"\s", "", compact)) <= 6144


def test_every_statement_is_scoped_by_the_stack_unless_aws_cannot_scope_it():
    for statement in DEFAULT_POLICY["Statement"]:
        resources = statement["Resource"]
        if statement["Sid"] == "ListingsAndCallerIdentityAwsAuthorizesOnlyOnStar":
            assert resources == ["*"]
        elif statement["Sid"].startswith(("RestApi", "TagRestApis", "UsagePlansAndApiKeys")):
            # API Gateway paths hold the random REST API (usage plan, API key) id, never our name.
            assert all(r.startswith("arn:aws:apigateway:us-east-1::/") for r in resources)
        else:
            assert all("demo-" in r for r in resources), statement


def test_the_policy_for_another_stack_names_only_that_stacks_resources(settings, make_config):
    settings["stack"] = "shop"
    settings["role"]["tutorial_managed_policies"] = True

    policy = json.dumps(deployer_policy(make_config(settings)))

    assert "demo" not in policy
    assert "arn:aws:dynamodb:us-east-1:*:table/shop-*" in policy and "arn:aws:iam::*:role/shop-LambdaDynamoDBRole" in policy
    assert "TutorialManagedPoliciesOnThisStacksRole" in policy and "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess" in policy


def test_provision_prints_the_deployer_policy_of_its_config_without_calling_aws(cli, settings, capsys):
    from crudstack.cli import provision_main

    settings["stack"] = "shop"
    code, out, err = cli(provision_main, "--deployer-policy", capsys=capsys)

    assert code == 0 and err == ""
    assert json.loads(out)["Statement"][1]["Resource"] == ["arn:aws:dynamodb:us-east-1:*:table/shop-*"]


@functools.cache
def _static_calls() -> frozenset[tuple[str, str]]:
    """Every AWS operation the steps (and the AWS door) call, read from the source: the code paths a
    moto run may not reach (a billing-mode change, a trust-policy repair, an e-mail subscription) too."""
    services = {"ddb": "dynamodb", "iam": "iam", "lam": "lambda", "apigw": "apigateway", "logs": "logs",
                "sns": "sns", "cw": "cloudwatch", "sts": "sts"}
    pattern = re.compile(r"\b(ddb|iam|lam|apigw|logs|sns|cw|sts)\.([a-z_]+)\b|paginate\((ddb|iam|lam|apigw|logs|sns|cw), \"([a-z_]+)\"")
    # The planned changes' records: Call("lambda", "create_function", ...) and the delete_once helper's operations.
    # The AWS door's verbs name their service and operation too: self._find("iam", "get_role", ...), look(...).
    records = re.compile(r"(?:Call|_find|look)\(\"([a-z]+)\", \"([a-z_]+)\"|delete_once\(\"([a-z_]+)\", \"([a-z_]+)\"")
    session = boto3.session.Session(region_name=REGION)
    calls = set()
    for path in sorted((ROOT / "crudstack" / "steps").glob("*.py")) + [ROOT / "crudstack" / "aws.py", ROOT / "crudstack" / "adopt.py"]:
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            var, method = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
            mapping = session.client(services[var]).meta.method_to_api_mapping
            if method in mapping:  # not client attributes such as meta
                calls.add((services[var], mapping[method]))
        for match in records.finditer(path.read_text(encoding="utf-8")):
            if match.group(1):
                service, methods = match.group(1), [match.group(2)]
            else:
                service, methods = "apigateway", [match.group(3), match.group(4)]
            mapping = session.client(service).meta.method_to_api_mapping
            calls.update((service, mapping[m]) for m in methods)
    return frozenset(calls)


def test_every_call_the_steps_make_is_in_the_table_the_policy_is_built_from():
    assert _static_calls() - set(OPERATIONS) == set()


def test_every_operation_of_the_table_is_called_by_the_steps():
    assert set(OPERATIONS) - _static_calls() == set()


def test_every_action_of_the_policy_is_needed_by_some_operation():
    # Minimal on paper, action by action: the policy is built from OPERATIONS, so an action no
    # operation needs cannot be in it (with the managed-policy statement of the tutorial switch).
    needed = {need.action for needs in OPERATIONS.values() for need in needs}
    policy = deployer_policy(load_config(ROOT / "config.yaml").model_copy(
        update={"role": load_config(ROOT / "config.yaml").role.model_copy(update={"tutorial_managed_policies": True})}))
    in_policy = {action for s in policy["Statement"] for action in s["Action"]}

    assert in_policy == needed


# -- the policy against moto's IAM enforcement ------------------------------------------------------------


def moto_view(policy: dict, signing_names: dict[str, str]) -> dict:
    """The policy as moto can evaluate it (see the module docstring): each statement's IAM actions
    become the "<signing name>:<Operation>" of the operations whose own action it is, and its
    Resource "*"; a statement of actions moto never checks becomes empty and is left out."""
    statements = []
    for statement in policy["Statement"]:
        key = statement_for(statement["Sid"]).key
        actions = sorted({f"{signing_names[service]}:{operation}" for (service, operation), needs in OPERATIONS.items()
                          if needs[0].statement == key and needs[0].action in statement["Action"]})
        if actions:
            statements.append({"Sid": statement["Sid"], "Effect": "Allow", "Action": actions, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


@pytest.fixture
def iam_enforced(monkeypatch):
    """A context manager: moto checks every request inside it against the sender's IAM policies."""
    from moto.iam import access_control

    signed = access_control.IAMRequestBase._create_aws_request

    def create_aws_request(self):
        # moto 5.2.1 hashes its header dict as the payload of a bodiless request (every Lambda and
        # API Gateway GET), so their signatures never match: hash the empty body the client signed.
        request = signed(self)
        if not self._body:
            request.data = b""
        return request

    monkeypatch.setattr(access_control.IAMRequestBase, "_create_aws_request", create_aws_request)
    return enable_iam_authentication


@pytest.fixture
def signing_names(boto_session) -> dict[str, str]:
    return {service: boto_session.client(service).meta.service_model.signing_name for service, _ in OPERATIONS}


@pytest.fixture
def deployer(aws_clients):
    """An IAM user "deployer" and a boto3 session with its access keys; deployer.allow(policy) sets its one policy."""
    aws_clients.iam.create_user(UserName="deployer")
    key = aws_clients.iam.create_access_key(UserName="deployer")["AccessKey"]
    session = boto3.session.Session(region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                                    aws_secret_access_key=key["SecretAccessKey"])

    class Deployer:
        clients = ReusedClients(session)   # one botocore client per service for all the runs of a test

        @staticmethod
        def allow(policy: dict) -> None:  # called outside enforcement, as the account's administrator
            aws_clients.iam.put_user_policy(UserName="deployer", PolicyName="deployer", PolicyDocument=json.dumps(policy))

    return Deployer


class Cycle:
    """provision, a re-run, a code change, teardown --backup: each run as the deployer, under enforcement."""

    def __init__(self, config, deployer, enforced, code_dir: Path, aws_clients, sleeps):
        self.config, self.deployer, self.enforced = config, deployer, enforced
        self.code_dir, self.aws_clients, self.sleeps = code_dir, aws_clients, sleeps
        self.calls: set[tuple[str, str]] = set()
        self.runs: dict[str, Aws] = {}

    def _run(self, name: str, *, teardown: bool = False, options: Options | None = None) -> Aws:
        aws = Aws(region=REGION, session=self.deployer.clients, sleep=self.sleeps,
                  deadline_s=self.config.retry.deadline_s, max_attempts=self.config.retry.max_attempts)
        aws.register("before-call", lambda model, **_: self.calls.add((model.service_model.service_name, model.name)))
        self.runs[name] = aws
        with self.enforced():
            run(Context(config=self.config, aws=aws, target="aws", options=options or Options()), Reporter(), teardown=teardown)
        return aws

    def __call__(self) -> None:
        self._run("provision")
        self._run("re-run")
        handler = self.code_dir / "get_item.py"
        handler.write_text(handler.read_text(encoding="utf-8") + "\n# a change of code\n", encoding="utf-8")
        self._run("code change")
        # An item in the table, put by someone else: teardown must back it up before deleting the table.
        self.aws_clients.dynamodb.put_item(TableName=self.config.table_name, Item={"id": {"S": "kept"}})
        self._run("teardown", teardown=True, options=Options(backup=True))


@pytest.fixture
def cycle(config, deployer, iam_enforced, code_dir, aws_clients, sleeps) -> Cycle:
    return Cycle(config, deployer, iam_enforced, code_dir, aws_clients, sleeps)


def test_moto_refuses_a_user_without_the_policy(cycle, deployer):
    deployer.allow({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]})

    with pytest.raises(DeploymentError) as raised:
        cycle()

    assert "may not call dynamodb:DescribeTable, which DescribeTable needs" in raised.value.fix
    assert "docs/real-account.md" in raised.value.fix   # README's 'Permissions' section moved there


def test_a_user_holding_only_the_deployer_policy_provisions_reruns_changes_code_and_tears_down(
        cycle, deployer, config, signing_names, aws_clients):
    policy = deployer_policy(config)
    deployer.allow(moto_view(policy, signing_names))

    cycle()

    assert cycle.runs["re-run"].stats.writes == 0
    assert cycle.runs["code change"].stats.mutating_calls() == ["lambda.UpdateFunctionCode"]
    assert ("dynamodb", "DescribeBackup") in cycle.calls and ("lambda", "UpdateFunctionCode") in cycle.calls
    assert aws_clients.dynamodb.list_tables()["TableNames"] == []
    assert [b["TableName"] for b in aws_clients.dynamodb.list_backups()["BackupSummaries"]] == [config.table_name]
    # On paper, with what moto does not check (PassRole, tag-on-create, ListTags of GetFunction):
    # every action each call of the cycle needs is in the policy.
    allowed = {action for s in policy["Statement"] for action in s["Action"]}
    needed = {need.action for call in cycle.calls for need in OPERATIONS[call]}
    assert needed - allowed == set()


@pytest.mark.parametrize("sid", SIDS)
def test_without_one_statement_the_cycle_fails_naming_one_of_its_actions(sid, cycle, deployer, config, signing_names):
    policy = deployer_policy(config)
    removed = next(s for s in policy["Statement"] if s["Sid"] == sid)
    deployer.allow(moto_view({**policy, "Statement": [s for s in policy["Statement"] if s is not removed]}, signing_names))

    try:
        cycle()
    except DeploymentError as error:
        assert sid not in NOT_ENFORCED_BY_MOTO, f"moto now refuses without {sid}: take it off NOT_ENFORCED_BY_MOTO"
        named = [action for action in removed["Action"] if f"may not call {action}" in error.fix]
        assert named, f"{error.fix!r} names none of {removed['Action']}"
        return
    if sid in NOT_ENFORCED_BY_MOTO:
        pytest.skip(f"not shown necessary on moto: {NOT_ENFORCED_BY_MOTO[sid]}")
    pytest.fail(f"the whole cycle succeeded without statement {sid}: it is not needed, or no call of the cycle uses it")


def test_the_role_statement_lets_the_deployer_at_its_own_role_and_not_another_stacks(
        deployer, iam_enforced, aws_clients, config):
    # moto checks IAM calls about an existing role against the role's ARN: the one place the
    # policy's own Resource scoping is shown on moto.
    role_statement = next(s for s in deployer_policy(config)["Statement"] if s["Sid"] == "RoleOfThisStack")
    deployer.allow({"Version": "2012-10-17", "Statement": [role_statement]})
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for name in (config.role_name, "other-LambdaDynamoDBRole", "demoapp-Role"):
        aws_clients.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    iam = deployer.clients.client("iam")

    with iam_enforced():
        assert iam.get_role(RoleName=config.role_name)["Role"]["RoleName"] == config.role_name
        for foreign in ("other-LambdaDynamoDBRole", "demoapp-Role"):
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                iam.get_role(RoleName=foreign)
            assert refused.value.response["Error"]["Code"] == "AccessDenied"


# -- --adopt through the deployer policy (names: tutorial) -------------------------------------------------


def test_with_the_tutorials_names_every_statement_names_exactly_this_stacks_resources(settings, make_config):
    import fnmatch

    from tests.support import console_stack

    policy = deployer_policy(make_config(console_stack.tutorial_settings(settings)))
    text = json.dumps(policy)
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert "tutorial-*" not in text and "TutorialManagedPoliciesOnThisStacksRole" in resources   # --adopt detaches them

    def allowed(sid: str, arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, pattern.replace("*:", "123456789012:", 1)) for pattern in resources[sid])

    assert allowed("ItemsTableOfThisStack", "arn:aws:dynamodb:us-east-1:123456789012:table/ItemsTable")
    assert not allowed("ItemsTableOfThisStack", "arn:aws:dynamodb:us-east-1:123456789012:table/OrdersTable")
    assert allowed("RoleOfThisStack", "arn:aws:iam::123456789012:role/LambdaDynamoDBRole")
    assert not allowed("RoleOfThisStack", "arn:aws:iam::123456789012:role/AdminRole")
    for name in ("CreateItemFunction", "GetItemsFunction", "GetItemFunction", "UpdateItemFunction", "DeleteItemFunction"):
        assert allowed("FunctionsOfThisStack", f"arn:aws:lambda:us-east-1:123456789012:function:{name}")
        assert allowed("LogGroupsOfThisStacksFunctions", f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{name}:*")
        assert allowed("AlarmsOfThisStack", f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}-Errors")
    assert not allowed("FunctionsOfThisStack", "arn:aws:lambda:us-east-1:123456789012:function:PaymentsFunction")
    assert allowed("AlarmsOfThisStack", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ItemsApi-5XXError")
    assert resources["AlertsTopicOfThisStack"] == ["arn:aws:sns:us-east-1:*:ItemsApiAlerts"]


@pytest.fixture
def managed_policies(monkeypatch):
    """moto leaves AWS managed policies out unless asked (read when its IAM backend is made: before any IAM call)."""
    from moto import settings as moto_settings

    monkeypatch.setitem(moto_settings.default_user_config, "iam", {"load_aws_managed_policies": True})


def test_a_user_holding_only_the_deployer_policy_adopts_the_console_stack_and_reruns_with_no_writes(
        managed_policies, settings, make_config, deployer, iam_enforced, signing_names, aws_clients, sleeps):
    from crudstack.adopt import run_adoption
    from crudstack.steps import STEPS
    from tests.support import console_stack

    made = console_stack.build(lambda service: getattr(aws_clients, "awslambda" if service == "lambda" else service))
    config = make_config(console_stack.tutorial_settings(settings))
    policy = deployer_policy(config)
    deployer.allow(moto_view(policy, signing_names))
    calls: set[tuple[str, str]] = set()

    def as_deployer() -> Context:
        aws = Aws(region=REGION, session=deployer.clients, sleep=sleeps)
        aws.register("before-call", lambda model, **_: calls.add((model.service_model.service_name, model.name)))
        return Context(config=config, aws=aws, target="aws")

    with iam_enforced():
        run_adoption(as_deployer(), Reporter(), Reporter(), apply=True)
        again = as_deployer()
        run(again, Reporter(), steps=STEPS)

    assert again.aws.stats.writes == 0
    assert ("apigateway", "UpdateRestApi") in calls and ("iam", "TagRole") in calls and ("iam", "DetachRolePolicy") in calls
    assert aws_clients.apigateway.get_rest_api(restApiId=made["api_id"])["tags"]["crudstack-stack"] == "tutorial"
    allowed = {action for s in policy["Statement"] for action in s["Action"]}
    assert {need.action for call in calls for need in OPERATIONS[call]} - allowed == set()
