"""Whole runs of provision and teardown against moto, in-process.

Every test here runs inside its own `mock_aws`, so each starts from an empty
account. Runs are driven the way the CLI drives them (a Context, then
`crudstack.runner.run`), each with a fresh `Aws` whose sleep is a no-op recorder,
so a retried call never waits and a test can count the retries.

Helpers (fixtures):
  settings      a copy of config.yaml's dict, with lambda.code_dir pointing at a
                private copy of lambdas/ (tests edit it; the repository's is never touched)
  make_config   settings dict -> Config, written to a YAML file in tmp_path first
  provision / teardown   one whole run; returns a Run (results, context, AWS call counts); clock= runs it
                in simulated time, attach= hooks a model or fault injector onto its Aws
  inject        make the Nth call of an operation fail (before or after it reaches moto)
  recorder      every call of a run with its parameters, in order
  cli           provision_main / teardown_main as a user runs them (exit code, stdout, stderr)
  aws_clients   plain boto3 clients, for looking at what the runs made
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from crudstack.aws import Aws, Budgets
from crudstack.local.patches import apigateway_access, apigateway_update_method
from crudstack.local.patches import apigateway_tags as moto_gaps
from crudstack.config import ROOT, Config, load_config
from crudstack.plan import Action, Context, Options
from crudstack.runner import Reporter, StepResult, run

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture(autouse=True)
def moto_account():
    moto_gaps.install()   # what the local AWS adds to moto (tags, UpdateMethod, usage plans), so runs here meet the same AWS
    apigateway_update_method.install()
    apigateway_access.install()
    with mock_aws():
        yield


# -- settings -------------------------------------------------------------------------------------


@pytest.fixture
def code_dir(tmp_path) -> Path:
    """A private copy of lambdas/: tests may edit it, and edits elsewhere cannot reach the tests."""
    target = tmp_path / "lambdas"
    shutil.copytree(ROOT / "lambdas", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


@pytest.fixture
def settings(code_dir) -> dict:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["lambda"]["code_dir"] = str(code_dir)  # relative code_dir is read from the repository root
    return data


@pytest.fixture
def make_config(tmp_path) -> Callable[[dict], Config]:
    counter = iter(range(1000))

    def make(data: dict) -> Config:
        path = tmp_path / f"config-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return load_config(path)

    return make


@pytest.fixture
def config(settings, make_config) -> Config:
    return make_config(settings)


# -- runs -----------------------------------------------------------------------------------------


@dataclass
class Run:
    ctx: Context
    results: list[StepResult] = field(default_factory=list)

    @property
    def aws(self) -> Aws:
        return self.ctx.aws

    @property
    def mutating_calls(self) -> list[str]:
        return self.aws.stats.mutating_calls()

    def calls(self, operation: str) -> int:
        return sum(n for (_, op), n in self.aws.stats.calls.items() if op == operation)

    @property
    def outcomes(self) -> dict[str, str]:
        return {r.step.title: r.outcome for r in self.results}

    def changes(self, kind: str | None = None, action: Action | None = None) -> list:
        return [c for r in self.results for c in r.changes
                if (kind is None or c.kind == kind) and (action is None or c.action is action)]


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One session for the whole run: it caches the service models, which makes a new client cheap."""
    return boto3.session.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


class ReusedClients:
    """Stands in for the boto3 Session given to Aws: one botocore client per service for the whole
    test session, because building one costs ~8 ms and every run needs eight of them.

    Whatever a previous Aws hooked onto a client (its call counter, a test's fault injection) is
    unhooked before the client is handed to the next Aws, so each run counts only its own calls.
    The clients themselves are built by Aws.client, with its real settings (botocore retries off).
    """

    def __init__(self, session: boto3.session.Session):
        self._session = session
        self._clients: dict[str, Any] = {}
        self._hooked: dict[str, list] = {}
        self.region_name = session.region_name

    def client(self, service: str, **kwargs):
        if service not in self._clients:
            client = self._session.client(service, **kwargs)
            events = client.meta.events
            hooked = self._hooked[service] = []
            real_register = events.register

            def register(event_name, handler, *args, **kw):
                hooked.append((event_name, handler))
                return real_register(event_name, handler, *args, **kw)

            events.register = register
            self._clients[service] = client
        client = self._clients[service]
        for event_name, handler in self._hooked[service]:
            client.meta.events.unregister(event_name, handler)
        self._hooked[service].clear()
        return client


@pytest.fixture(scope="session")
def reused_clients(boto_session) -> ReusedClients:
    return ReusedClients(boto_session)


@pytest.fixture
def new_aws(sleeps, reused_clients) -> Callable[..., Aws]:
    # One simulated account per clock: the runs of a test on one SimClock follow each other with no time
    # between them, and AWS counts their calls against one rate budget, so their limiters share it.
    accounts: dict[int, Budgets] = {}

    def make(config: Config | None = None, hooks: tuple = (), clock=None) -> Aws:
        kwargs = {}
        if config is not None:
            kwargs = {"deadline_s": config.retry.deadline_s, "max_attempts": config.retry.max_attempts}
        if clock is not None:  # simulated time (crudstack.realistic.SimClock): its sleep moves it on
            kwargs.update(sleep=clock.sleep, clock=clock, budgets=accounts.setdefault(id(clock), Budgets()))
        else:
            kwargs.update(sleep=sleeps)
        aws = Aws(region=REGION, session=reused_clients, **kwargs)
        for event, handler in hooks:
            aws.register(event, handler)
        return aws

    return make


def _runner(config: Config, new_aws, *, teardown: bool):
    def go(cfg: Config | None = None, *, hooks: tuple = (), target: str = "aws", options: Options | None = None,
           on_step_done: Callable[[StepResult], None] | None = None, run_out: list | None = None, clock=None,
           attach: Callable[[Aws], Any] | None = None) -> Run:
        cfg = cfg or config
        aws = new_aws(cfg, (), clock)
        if attach is not None:  # e.g. AccountModel.attach, Chaos.attach: nearest to AWS, so hooked first
            attach(aws)
        for event, handler in hooks:
            aws.register(event, handler)
        result = Run(Context(config=cfg, aws=aws, target=target, options=options or Options()))
        if run_out is not None:  # lets a test look at the calls of a run that raised
            run_out.append(result)
        result.results = run(result.ctx, Reporter(), teardown=teardown, on_step_done=on_step_done)
        return result

    return go


@pytest.fixture
def provision(config, new_aws):
    """provision(cfg=None, hooks=(), ...) -> Run: one whole provisioning run."""
    return _runner(config, new_aws, teardown=False)


@pytest.fixture
def teardown(config, new_aws):
    """teardown(cfg=None, options=Options(...), ...) -> Run: one whole teardown run."""
    return _runner(config, new_aws, teardown=True)


# -- the commands ----------------------------------------------------------------------------------


@pytest.fixture
def cli(settings, tmp_path, monkeypatch):
    """cli(main, *args, capsys=capsys) -> (exit code, stdout (parsed with --json), stderr): provision_main or
    teardown_main on this test's settings, --target aws, backoff sleeps skipped; cli.hooks are put on its Aws."""
    import crudstack.cli

    real_connect = crudstack.cli.connect

    def connect(config, target):
        aws, endpoint = real_connect(config, target)
        aws.sleep = lambda seconds: None
        for event, handler in go.hooks:
            aws.register(event, handler)
        return aws, endpoint

    monkeypatch.setattr(crudstack.cli, "connect", connect)
    path = tmp_path / "config.yaml"

    def go(main, *args, capsys):
        path.write_text(yaml.safe_dump(settings), encoding="utf-8")  # as the test has left the settings
        code = main(["--config", str(path), "--target", "aws", *args])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if "--json" in args and out.strip().startswith("{") else out), err

    go.hooks = []
    return go


# -- fault injection ------------------------------------------------------------------------------


def aws_error(code: str, message: str = "injected", status: int = 400):
    """A botocore before-call answer: botocore raises it as the service's modelled ClientError."""
    response = AWSResponse("https://injected.invalid/", status, {}, None)
    parsed = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
    return lambda: (response, parsed)


@dataclass
class Fault:
    """Make calls number skip+1 .. skip+times of one operation fail; count every call of it."""

    operation: str
    fail: Callable[[], Any]                 # returns a before-call answer, or raises
    times: int = 1
    skip: int = 0
    after: bool = False                     # fail once the call went through (its answer is lost)
    seen: int = 0
    failed: int = 0

    def hook(self, model, **_):
        if model.name != self.operation:
            return None
        self.seen += 1
        if self.skip < self.seen <= self.skip + self.times:
            self.failed += 1
            return self.fail()
        return None

    @property
    def event(self) -> tuple[str, Callable]:
        return ("after-call" if self.after else "before-call", self.hook)


@pytest.fixture
def inject() -> Callable[..., Fault]:
    """inject("CreateTable", aws_error("ThrottlingException"), times=2) -> Fault; pass fault.event as a hook."""

    def make(operation: str, fail, *, times: int = 1, skip: int = 0, after: bool = False) -> Fault:
        if isinstance(fail, BaseException) or (isinstance(fail, type) and issubclass(fail, BaseException)):
            exc = fail

            def fail():
                raise exc

        return Fault(operation, fail, times=times, skip=skip, after=after)

    return make


class Recorder(list):
    """Every call a run makes, in order, as (operation, parameters): hook it with `recorder.event`."""

    def hook(self, params, model, **_):
        self.append((model.name, dict(params)))

    @property
    def event(self) -> tuple[str, Callable]:
        return ("before-parameter-build", self.hook)

    def params(self, operation: str) -> list[dict]:
        return [p for op, p in self if op == operation]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# -- looking at the account -----------------------------------------------------------------------


class Clients:
    """Plain boto3 clients, outside crudstack's door (their calls are not counted)."""

    def __init__(self, session: boto3.session.Session):
        self._session = session

    def __getattr__(self, service: str):
        if service.startswith("_"):
            raise AttributeError(service)
        client = self._session.client("lambda" if service == "awslambda" else service, region_name=REGION)
        setattr(self, service, client)
        return client


@pytest.fixture
def aws_clients(boto_session) -> Clients:
    return Clients(boto_session)


def rest_apis(clients: Clients, name: str) -> list[dict]:
    return [a for a in clients.apigateway.get_rest_apis(limit=500)["items"] if a["name"] == name]


def assert_one_complete_stack(clients: Clients, cfg: Config) -> None:
    """Exactly one of everything the stack is made of, wired as configured."""
    assert clients.dynamodb.list_tables()["TableNames"].count(cfg.table_name) == 1
    assert [r["RoleName"] for r in clients.iam.list_roles()["Roles"]].count(cfg.role_name) == 1
    functions = [f["FunctionName"] for f in clients.awslambda.list_functions()["Functions"] if f["FunctionName"].startswith(f"{cfg.stack}-")]
    assert sorted(functions) == sorted(cfg.function_name(b) for b in cfg.lambda_.functions)
    apis = rest_apis(clients, cfg.api_name)
    assert len(apis) == 1, f"expected one REST API {cfg.api_name}, found {[a['id'] for a in apis]}"
    api_id = apis[0]["id"]
    resources = clients.apigateway.get_resources(restApiId=api_id, limit=500, embed=["methods"])["items"]
    assert sorted(r["path"] for r in resources) == ["/", "/items", "/items/{id}"]
    methods = {(m, r["path"]) for r in resources for m in r.get("resourceMethods") or {}}
    routes = {(f.method, f.path) for f in cfg.lambda_.functions.values()}
    assert methods == routes | {("OPTIONS", path) for _, path in routes}
    for resource in resources:
        for method in resource.get("resourceMethods") or {}:
            integration = clients.apigateway.get_integration(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
            assert integration["type"] == ("MOCK" if method == "OPTIONS" else "AWS_PROXY")
            if method == "OPTIONS":
                assert set(integration["integrationResponses"]["200"]["responseParameters"]) == set(
                    clients.apigateway.get_method_response(restApiId=api_id, resourceId=resource["id"], httpMethod=method,
                                                           statusCode="200")["responseParameters"])
    stages = clients.apigateway.get_stages(restApiId=api_id)["item"]
    assert [s["stageName"] for s in stages] == [cfg.api.stage]
    topics = [t["TopicArn"] for t in clients.sns.list_topics()["Topics"]]
    assert [t for t in topics if t.endswith(f":{cfg.topic_name}")] == [f"arn:aws:sns:{REGION}:{ACCOUNT}:{cfg.topic_name}"]
    alarms = [a["AlarmName"] for a in clients.cloudwatch.describe_alarms(AlarmNamePrefix=f"{cfg.stack}-")["MetricAlarms"]]
    assert len(alarms) == len(set(alarms)) == 3 * len(cfg.lambda_.functions) + 2
    for base in cfg.lambda_.functions:
        statements = permission_statements(clients, cfg, base)
        assert len(statements) == 1
        assert f":{api_id}/" in statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"]


def permission_statements(clients: Clients, cfg: Config, base: str) -> list[dict]:
    import json

    policy = json.loads(clients.awslambda.get_policy(FunctionName=cfg.function_name(base))["Policy"])
    return [s for s in policy["Statement"] if s.get("Sid") == f"{cfg.stack}-apigateway-invoke"]


# -- simulated time (crudstack.realistic) ----------------------------------------------------------


@contextlib.contextmanager
def seeded(seed: int):
    """tenacity's backoff jitter draws from `random`: seed it, so simulated times repeat."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


@pytest.fixture
def clock():
    from crudstack.realistic import SimClock

    return SimClock()
