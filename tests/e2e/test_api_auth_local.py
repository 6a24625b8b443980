"""Issue 13's acceptance through provision on the local AWS: api.auth, api.throttle and api.usage_plan as
provision sets them up and as the local gateway enforces them, through the invoke URL in outputs/stack.json.

    api_key   no key 403, wrong key 403, the key 200, over the plan's burst 429 "Too Many Requests", over its
              quota 429 "Limit Exceeded"; every refusal with the CORS header of the provisioned DEFAULT_4XX
              gateway response; a re-run with the same config makes no write
    iam       unsigned 403 "Missing Authentication Token", signed (SigV4, execute-api) with the local AWS's
              default credentials 200; badly signed, replayed after the 5-minute window, signed for another
              service or another region: 403 with API Gateway's message, never a 5xx (issue 21)
              teardown deletes the plan (its stage let go first) and the key
    none      the stage's default method throttling (api.throttle) is enforced: 429 above it

Bursts are sent at once from threads: one after another, a request's own run (a cold start takes about a
second here) would give the bucket time to refill at 1 a second. The tests of a module run in file order.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json

import pytest
import requests
import yaml

from crudstack.config import ROOT
from tests.e2e.conftest import LocalStack, make_stack, provisioned

ORIGIN = "http://localhost:3000"
TIMEOUT = 30


def api_settings(**overrides) -> dict:
    """The repository's api: block with `overrides` (auth, throttle, usage_plan) on top."""
    api = yaml.safe_load((ROOT / "config.yaml").read_text())["api"]
    api.update(overrides)
    return api


def get(stack: LocalStack, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{stack.invoke_url}/items", headers={"Origin": ORIGIN, **(headers or {})}, timeout=TIMEOUT)


def at_once(stack: LocalStack, count: int, headers: dict | None = None) -> list[requests.Response]:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: get(stack, headers), range(count)))


def assert_refused(answer: requests.Response, status: int, body: dict) -> None:
    """A refusal API Gateway makes itself, readable by a page: the DEFAULT_4XX gateway response's CORS headers."""
    assert (answer.status_code, answer.json()) == (status, body), answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "x-api-key" in answer.headers["Access-Control-Allow-Headers"].lower()


def reprovision(stack: LocalStack, api: dict) -> dict:
    """Provision again with config.yaml's api: block replaced; the run's --json document."""
    config = yaml.safe_load(stack.config_path.read_text())
    config["api"] = api
    stack.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = stack.provision("--json")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def changed(document: dict) -> list[dict]:
    return [c for step in document["steps"] for c in step["changes"] if c["action"] != "unchanged"]


# -- api_key -------------------------------------------------------------------------------------------------

KEYED = api_settings(auth="api_key", usage_plan={"rate_per_s": 1, "burst": 2, "quota": None, "quota_period": "DAY"})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    with provisioned(make_stack(tmp_path_factory.mktemp("keyed"), {"api": KEYED})) as stack:
        yield stack


@pytest.fixture(scope="module")
def key(keyed) -> str:
    value = keyed.document["auth"]["api_key"]["value"]
    assert value and len(value) >= 20, keyed.document["auth"]
    return value


def test_without_a_key_the_invoke_url_answers_403_forbidden_with_the_cors_headers(keyed):
    assert_refused(get(keyed), 403, {"message": "Forbidden"})


def test_a_wrong_key_is_403_forbidden_with_the_cors_headers(keyed, key):
    assert_refused(get(keyed, {"x-api-key": key[::-1]}), 403, {"message": "Forbidden"})


def test_the_key_from_stack_json_gets_the_items(keyed, key):
    answer = get(keyed, {"x-api-key": key})

    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == []
    assert answer.headers["Access-Control-Allow-Origin"] == "*"   # the function's own CORS headers


def test_a_burst_over_the_usage_plans_burst_is_429_too_many_requests_with_the_cors_headers(keyed, key):
    answers = at_once(keyed, 6, {"x-api-key": key})

    statuses = sorted(a.status_code for a in answers)
    assert 429 in statuses and set(statuses) <= {200, 429}, statuses
    assert_refused(next(a for a in answers if a.status_code == 429), 429, {"message": "Too Many Requests"})


def test_a_rerun_finds_the_usage_plan_the_key_and_the_stage_throttle_unchanged_and_writes_nothing(keyed, key):
    again = keyed.provision("--json")

    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["aws_calls"]["writes"] == 0 and changed(document) == []
    # Found again, not made twice: the same plan and key, the plan still on the stage with the key in it.
    assert document["auth"]["usage_plan"]["id"] == keyed.document["auth"]["usage_plan"]["id"]
    assert document["auth"]["api_key"]["value"] == key
    apigateway = keyed.client("apigateway")
    [plan] = apigateway.get_usage_plans()["items"]
    api_id = keyed.document["resources"]["rest_api"]["id"]
    assert [(s["apiId"], s["stage"]) for s in plan["apiStages"]] == [(api_id, "prod")]
    assert [k["value"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [key]
    stage = apigateway.get_stage(restApiId=api_id, stageName="prod")
    assert {k: stage["methodSettings"]["*/*"][k] for k in ("throttlingRateLimit", "throttlingBurstLimit")} == {
        "throttlingRateLimit": 100.0, "throttlingBurstLimit": 200}


def test_a_quota_added_by_a_reprovision_is_enforced_429_limit_exceeded_and_a_rerun_writes_nothing(keyed, key):
    # The plan's throttle at the account's most (10,000/s): its bucket, near empty after the burst above and
    # keeping its tokens through the change, refills faster than requests one after another can empty it.
    quota = api_settings(auth="api_key", usage_plan={"rate_per_s": 10000, "burst": 5000, "quota": 3, "quota_period": "DAY"})
    document = reprovision(keyed, quota)
    assert [c["kind"] for c in changed(document)] == ["usage plan"], changed(document)
    assert document["auth"]["api_key"]["value"] == key   # the same key, found again

    statuses = [get(keyed, {"x-api-key": key}).status_code for _ in range(3)]
    over = get(keyed, {"x-api-key": key})

    assert statuses == [200, 200, 200]
    assert_refused(over, 429, {"message": "Limit Exceeded"})
    again = reprovision(keyed, quota)
    assert again["aws_calls"]["writes"] == 0 and changed(again) == []



def test_teardown_lets_the_stage_go_and_deletes_the_usage_plan_and_the_key(keyed):
    plan_id = keyed.document["auth"]["usage_plan"]["id"]
    key_id = keyed.document["auth"]["api_key"]["id"]

    result = keyed.run("teardown.py", "--yes", "--delete-data")

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert any(f"usage plan {keyed.name('ItemsApi-plan')} ({plan_id})" in line and "deleted" in line for line in lines)
    assert any(f"API key {keyed.name('ItemsApi-key')} ({key_id})" in line and "deleted" in line for line in lines)
    assert "The local AWS held nothing else and was stopped." in result.stdout


# -- iam -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_only(tmp_path_factory):
    with provisioned(make_stack(tmp_path_factory.mktemp("iam"), {"api": api_settings(auth="iam")})) as stack:
        yield stack


def test_with_iam_an_unsigned_request_is_403_missing_authentication_token_with_the_cors_headers(signed_only):
    assert_refused(get(signed_only), 403, {"message": "Missing Authentication Token"})


def test_with_iam_a_request_signed_with_the_local_default_credentials_gets_the_items(signed_only):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{signed_only.invoke_url}/items"
    request = AWSRequest(method="GET", url=url, headers={"Origin": ORIGIN})
    # The local AWS's own credentials (crudstack/local/iam/credentials.py), which stand for the account's root user.
    from crudstack.local.iam.credentials import local_credentials

    own = local_credentials(signed_only.state_dir)
    SigV4Auth(Credentials(own.access_key_id, own.secret_access_key), "execute-api",
              signed_only.document["region"]).add_auth(request)

    answer = requests.get(url, headers=dict(request.headers), timeout=TIMEOUT)

    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == []


def signed_get(stack: LocalStack, *, secret: str | None = None, service: str = "execute-api", region: str | None = None,
               signed_at: dt.datetime | None = None) -> requests.Response:
    """GET /items signed with SigV4 as a client would sign it: the local AWS's own key (its root user), or what
    the test changes."""
    from unittest import mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from crudstack.local.iam.credentials import local_credentials

    own = local_credentials(stack.state_dir)
    url = f"{stack.invoke_url}/items"
    request = AWSRequest(method="GET", url=url, headers={"Origin": ORIGIN})
    auth = SigV4Auth(Credentials(own.access_key_id, own.secret_access_key if secret is None else secret), service,
                     region or stack.document["region"])
    if signed_at is None:
        auth.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            auth.add_auth(request)
    return requests.get(url, headers=dict(request.headers), timeout=TIMEOUT)


def test_with_iam_a_request_signed_with_a_wrong_secret_is_403_invalid_signature(signed_only):
    answer = signed_get(signed_only, secret="not-the-secret")

    assert answer.status_code == 403, answer.text
    assert answer.json()["message"].startswith("The request signature we calculated does not match the signature you "
                                               "provided. Check your AWS Secret Access Key and signing method.")
    assert answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_with_iam_a_request_replayed_six_minutes_after_signing_is_403_signature_expired(signed_only):
    six_minutes_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=6)
    answer = signed_get(signed_only, signed_at=six_minutes_ago)

    assert answer.status_code == 403, answer.text
    message = answer.json()["message"]
    assert message.startswith(f"Signature expired: {six_minutes_ago:%Y%m%dT%H%M%SZ} is now earlier than ")
    assert message.endswith(" - 5 min.)")
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_with_iam_a_request_signed_for_another_service_or_region_is_403_naming_the_scope(signed_only):
    other_region = "eu-west-1" if signed_only.document["region"] != "eu-west-1" else "us-east-1"

    assert_refused(signed_get(signed_only, service="lambda"), 403,
                   {"message": "Credential should be scoped to correct service: 'execute-api'. "})
    assert_refused(signed_get(signed_only, region=other_region), 403,
                   {"message": f"Credential should be scoped to a valid region, not '{other_region}'. "})


# -- none: the stage's throttle ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def throttled(tmp_path_factory):
    api = api_settings(auth="none", throttle={"rate_per_s": 1, "burst": 1})
    with provisioned(make_stack(tmp_path_factory.mktemp("throttled"), {"api": api})) as stack:
        yield stack


def test_with_auth_none_the_stage_throttle_answers_429_above_its_burst(throttled):
    answers = at_once(throttled, 4)

    statuses = sorted(a.status_code for a in answers)
    assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}, statuses
    assert_refused(next(a for a in answers if a.status_code == 429), 429, {"message": "Too Many Requests"})
    assert throttled.document["auth"]["throttle"] == {"rate_per_s": 1, "burst": 1}
