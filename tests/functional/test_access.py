"""Who can call the API (api.auth, api.throttle, api.usage_plan), whole runs against moto: what each auth mode
makes, that a second run changes nothing, that drift is put back, that modes switch back and forth, and that
teardown leaves nothing of it."""

from __future__ import annotations

import json

import pytest

from crudstack.cli import provision_main
from crudstack.errors import OwnershipError
from crudstack.plan import Action
from tests.functional.conftest import rest_apis

ROUTES = {("POST", "/items"), ("GET", "/items"), ("GET", "/items/{id}"), ("PUT", "/items/{id}"), ("DELETE", "/items/{id}")}


@pytest.fixture
def with_auth(settings, make_config):
    """with_auth("api_key", throttle=..., usage_plan=...) -> Config with those api settings."""

    def make(auth: str, **api):
        settings["api"] = {**settings["api"], "auth": auth, **api}
        return make_config(settings)

    return make


def api_id(clients, cfg) -> str:
    [api] = rest_apis(clients, cfg.api_name)
    return api["id"]


def methods(clients, cfg) -> dict[tuple[str, str], dict]:
    resources = clients.apigateway.get_resources(restApiId=api_id(clients, cfg), embed=["methods"])["items"]
    return {(m, r["path"]): detail for r in resources for m, detail in (r.get("resourceMethods") or {}).items()}


def plans(clients, cfg) -> list[dict]:
    return [p for p in clients.apigateway.get_usage_plans()["items"] if p["name"] == cfg.usage_plan_name]


def keys(clients, cfg) -> list[dict]:
    return [k for k in clients.apigateway.get_api_keys(includeValues=True)["items"] if k["name"] == cfg.api_key_name]


# -- auth: none (the default) ---------------------------------------------------------------------------


def test_auth_none_leaves_every_method_open_and_makes_no_usage_plan_or_key(provision, config, aws_clients):
    provision(config)

    got = methods(aws_clients, config)
    assert {k for k in got if k[0] != "OPTIONS"} == ROUTES
    assert all(m["authorizationType"] == "NONE" and not m.get("apiKeyRequired") for m in got.values())
    assert plans(aws_clients, config) == [] and keys(aws_clients, config) == []


def test_auth_none_prints_one_warning_that_anyone_can_call_the_api(provision, config, caplog):
    with caplog.at_level("WARNING"):
        provision(config)

    warnings = [r.getMessage() for r in caplog.records if "anyone who has the invoke URL" in r.getMessage()]
    assert len(warnings) == 1
    assert "api.auth is none" in warnings[0] and "api_key or iam" in warnings[0]


def test_no_warning_of_an_open_api_when_it_needs_a_key(provision, with_auth, caplog):
    with caplog.at_level("WARNING"):
        provision(with_auth("api_key"))

    assert not [r for r in caplog.records if "anyone who has the invoke URL" in r.getMessage()]


# -- stage throttling ---------------------------------------------------------------------------------------


def test_the_stage_throttles_every_method_at_the_configured_rate_and_burst_by_default(provision, config, aws_clients):
    provision(config)

    stage = aws_clients.apigateway.get_stage(restApiId=api_id(aws_clients, config), stageName="prod")
    settings = stage["methodSettings"]["*/*"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (100.0, 200)


def test_a_changed_throttle_updates_only_the_stage_settings_and_does_not_redeploy(provision, config, with_auth, aws_clients, recorder):
    provision(config)

    second = provision(with_auth("none", throttle={"rate_per_s": 5.5, "burst": 7}), hooks=(recorder.event,))

    assert second.mutating_calls == ["apigateway.UpdateStage"]
    settings = aws_clients.apigateway.get_stage(restApiId=api_id(aws_clients, config), stageName="prod")["methodSettings"]["*/*"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (5.5, 7)
    [change] = second.changes("stage throttle")
    assert change.action is Action.UPDATE and change.diffs == {"rate": (100.0, 5.5), "burst": (200, 7)}


def test_a_stage_throttle_changed_by_hand_is_put_back(provision, config, aws_clients):
    provision(config)
    the_id = api_id(aws_clients, config)
    aws_clients.apigateway.update_stage(restApiId=the_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "10000"}])

    again = provision(config)

    assert again.mutating_calls == ["apigateway.UpdateStage"]
    assert aws_clients.apigateway.get_stage(restApiId=the_id, stageName="prod")["methodSettings"]["*/*"]["throttlingRateLimit"] == 100.0


# -- gateway responses --------------------------------------------------------------------------------------


def test_api_gateways_own_4xx_and_5xx_answers_carry_the_cors_headers(provision, settings, with_auth, aws_clients):
    cfg = with_auth("none", cors={"allowed_origins": ["https://shop.example.com"], "max_age_s": 60})
    provision(cfg)

    responses = {r["responseType"]: r for r in aws_clients.apigateway.get_gateway_responses(restApiId=api_id(aws_clients, cfg))["items"]}
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        headers = responses[kind]["responseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://shop.example.com'"
        allowed = headers["gatewayresponse.header.Access-Control-Allow-Headers"].strip("'").lower().split(",")
        assert {"x-api-key", "authorization", "x-amz-date", "x-amz-security-token", "if-match"} <= set(allowed)
        assert headers["gatewayresponse.header.Access-Control-Allow-Methods"] == "'DELETE,GET,POST,PUT,OPTIONS'"
        assert responses[kind]["responseTemplates"] == {"application/json": '{"message":$context.error.messageString}'}


def test_a_changed_cors_origin_puts_both_gateway_responses_again_and_redeploys(provision, config, with_auth, aws_clients):
    provision(config)

    second = provision(with_auth("none", cors={"allowed_origins": ["https://other.example.com"]}))

    assert sorted(c.name for c in second.changes("gateway response", Action.UPDATE)) == ["DEFAULT_4XX", "DEFAULT_5XX"]
    assert second.calls("PutGatewayResponse") == 2 and second.calls("CreateDeployment") == 1


def test_a_gateway_response_deleted_by_hand_is_put_back_without_a_redeploy_as_the_live_deployment_still_has_it(
        provision, config, aws_clients):
    provision(config)
    the_id = api_id(aws_clients, config)
    aws_clients.apigateway.delete_gateway_response(restApiId=the_id, responseType="DEFAULT_5XX")

    again = provision(config)

    assert [c.name for c in again.changes("gateway response", Action.CREATE)] == ["DEFAULT_5XX"]
    assert again.mutating_calls == ["apigateway.PutGatewayResponse"]
    assert "DEFAULT_5XX" in {r["responseType"] for r in aws_clients.apigateway.get_gateway_responses(restApiId=the_id)["items"]}
    assert provision(config).mutating_calls == []


# -- auth: api_key ------------------------------------------------------------------------------------------


def test_api_key_mode_requires_a_key_on_every_method_but_the_preflights(provision, with_auth, aws_clients):
    cfg = with_auth("api_key")
    provision(cfg)

    for (method, _), detail in methods(aws_clients, cfg).items():
        assert detail["authorizationType"] == "NONE"
        assert detail["apiKeyRequired"] is (method != "OPTIONS")


def test_api_key_mode_makes_a_tagged_usage_plan_on_the_stage_with_the_configured_throttle_and_quota(provision, with_auth, aws_clients):
    cfg = with_auth("api_key", usage_plan={"rate_per_s": 3, "burst": 6, "quota": 500, "quota_period": "WEEK"})
    provision(cfg)

    [plan] = plans(aws_clients, cfg)
    assert plan["name"] == "demo-ItemsApi-plan"
    assert plan["apiStages"] == [{"apiId": api_id(aws_clients, cfg), "stage": "prod"}]
    assert plan["throttle"] == {"rateLimit": 3.0, "burstLimit": 6}
    assert plan["quota"] == {"limit": 500, "period": "WEEK"}
    assert plan["tags"] == cfg.all_tags


def test_api_key_mode_makes_one_enabled_tagged_key_in_the_plan_and_keeps_its_value(provision, with_auth, aws_clients):
    cfg = with_auth("api_key")
    run = provision(cfg)

    [key] = keys(aws_clients, cfg)
    assert key["name"] == "demo-ItemsApi-key" and key["enabled"] is True and key["tags"] == cfg.all_tags
    [plan] = plans(aws_clients, cfg)
    assert [k["id"] for k in aws_clients.apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [key["id"]]
    assert run.ctx.variables["api_key_value"] == key["value"]


def test_no_quota_makes_a_plan_without_one(provision, with_auth, aws_clients):
    cfg = with_auth("api_key", usage_plan={"quota": None})
    provision(cfg)

    [plan] = plans(aws_clients, cfg)
    assert "quota" not in plan


def test_a_second_api_key_provision_makes_no_mutating_call_and_finds_the_key_again(provision, with_auth):
    cfg = with_auth("api_key")
    first = provision(cfg)

    second = provision(cfg)

    assert second.mutating_calls == []
    assert set(second.outcomes.values()) == {"unchanged"}
    assert second.ctx.variables["api_key_value"] == first.ctx.variables["api_key_value"]


def test_changed_usage_plan_settings_are_one_update_of_the_plan(provision, with_auth, aws_clients):
    provision(with_auth("api_key"))

    cfg = with_auth("api_key", usage_plan={"rate_per_s": 2.5, "burst": 4, "quota": None})
    second = provision(cfg)

    assert second.mutating_calls == ["apigateway.UpdateUsagePlan"]
    [plan] = plans(aws_clients, cfg)
    assert plan["throttle"] == {"rateLimit": 2.5, "burstLimit": 4} and "quota" not in plan
    [change] = second.changes("usage plan", Action.UPDATE)
    assert set(change.diffs) == {"rate", "burst", "quota"}


def test_a_method_opened_by_hand_is_closed_again_and_the_stage_keeps_the_deployment_that_has_it_closed(provision, with_auth, aws_clients):
    cfg = with_auth("api_key")
    provision(cfg)
    the_id = api_id(aws_clients, cfg)
    resource = next(r for r in aws_clients.apigateway.get_resources(restApiId=the_id)["items"] if r["path"] == "/items")
    aws_clients.apigateway.update_method(restApiId=the_id, resourceId=resource["id"], httpMethod="POST", patchOperations=[
        {"op": "replace", "path": "/apiKeyRequired", "value": "false"}])

    again = provision(cfg)

    [change] = again.changes("method", Action.UPDATE)
    assert change.name == "POST /items" and change.diffs == {"api key required": (False, True)}
    assert again.mutating_calls == ["apigateway.UpdateMethod"]
    assert methods(aws_clients, cfg)[("POST", "/items")]["apiKeyRequired"] is True


def test_a_disabled_key_and_a_plan_moved_off_the_stage_are_put_back(provision, with_auth, aws_clients):
    cfg = with_auth("api_key")
    provision(cfg)
    [key], [plan] = keys(aws_clients, cfg), plans(aws_clients, cfg)
    aws_clients.apigateway.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    aws_clients.apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=[
        {"op": "remove", "path": "/apiStages", "value": f"{api_id(aws_clients, cfg)}:prod"}])

    again = provision(cfg)

    assert sorted(again.mutating_calls) == ["apigateway.UpdateApiKey", "apigateway.UpdateUsagePlan"]
    assert keys(aws_clients, cfg)[0]["enabled"] is True
    assert plans(aws_clients, cfg)[0]["apiStages"] == [{"apiId": api_id(aws_clients, cfg), "stage": "prod"}]


def test_a_key_taken_out_of_the_plan_by_hand_is_added_again(provision, with_auth, aws_clients):
    cfg = with_auth("api_key")
    provision(cfg)
    [key], [plan] = keys(aws_clients, cfg), plans(aws_clients, cfg)
    aws_clients.apigateway.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"])

    again = provision(cfg)

    assert again.mutating_calls == ["apigateway.CreateUsagePlanKey"]
    assert [k["id"] for k in aws_clients.apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [key["id"]]


def test_a_tag_added_to_config_is_set_on_the_plan_and_the_key(provision, settings, with_auth, aws_clients):
    provision(with_auth("api_key"))

    settings["tags"] = {**settings["tags"], "cost-centre": "42"}
    cfg = with_auth("api_key")
    again = provision(cfg)

    assert again.calls("TagResource") >= 2
    assert plans(aws_clients, cfg)[0]["tags"]["cost-centre"] == "42"
    assert keys(aws_clients, cfg)[0]["tags"]["cost-centre"] == "42"


def test_a_look_alike_usage_plan_stops_an_api_key_provision_and_is_left_alone(provision, with_auth, aws_clients):
    cfg = with_auth("api_key")
    aws_clients.apigateway.create_usage_plan(name=cfg.usage_plan_name, tags={"owner": "someone-else"})

    with pytest.raises(OwnershipError, match="usage plan demo-ItemsApi-plan"):
        provision(cfg)

    [plan] = plans(aws_clients, cfg)
    assert plan["tags"] == {"owner": "someone-else"} and not plan.get("apiStages")


# -- auth: iam ----------------------------------------------------------------------------------------------


def test_iam_mode_signs_every_method_but_the_preflights_and_makes_no_key(provision, with_auth, aws_clients):
    cfg = with_auth("iam")
    provision(cfg)

    for (method, _), detail in methods(aws_clients, cfg).items():
        assert detail["authorizationType"] == ("NONE" if method == "OPTIONS" else "AWS_IAM")
        assert not detail.get("apiKeyRequired")
    assert plans(aws_clients, cfg) == [] and keys(aws_clients, cfg) == []
    assert provision(cfg).mutating_calls == []


# -- switching modes ----------------------------------------------------------------------------------------


def test_switching_none_api_key_iam_none_changes_methods_in_place_and_adds_then_removes_the_plan_and_key(provision, config, with_auth, aws_clients):
    provision(config)

    to_key = provision(with_auth("api_key"))
    assert to_key.calls("UpdateMethod") == 5 and to_key.calls("CreateDeployment") == 1
    assert len(plans(aws_clients, config)) == 1 and len(keys(aws_clients, config)) == 1

    to_iam = provision(with_auth("iam"))
    assert to_iam.calls("UpdateMethod") == 5 and to_iam.calls("CreateDeployment") == 1
    assert plans(aws_clients, config) == [] and keys(aws_clients, config) == []
    assert {d["authorizationType"] for (m, _), d in methods(aws_clients, config).items() if m != "OPTIONS"} == {"AWS_IAM"}

    back = provision(with_auth("none"))
    assert back.calls("UpdateMethod") == 5
    assert all(d["authorizationType"] == "NONE" and not d["apiKeyRequired"] for d in methods(aws_clients, config).values())
    assert provision(with_auth("none")).mutating_calls == []


def test_leaving_api_key_mode_lets_the_plan_go_of_the_stage_before_deleting_it(provision, with_auth, recorder):
    provision(with_auth("api_key"))

    provision(with_auth("none"), hooks=(recorder.event,))

    ops = [op for op, _ in recorder if op in ("UpdateUsagePlan", "DeleteUsagePlan")]
    assert ops == ["UpdateUsagePlan", "DeleteUsagePlan"]
    assert recorder.params("UpdateUsagePlan")[0]["patchOperations"][0]["op"] == "remove"


# -- teardown -----------------------------------------------------------------------------------------------


def test_teardown_removes_the_usage_plan_before_the_rest_api_and_the_key_too(provision, teardown, with_auth, aws_clients, recorder):
    cfg = with_auth("api_key")
    provision(cfg)

    teardown(cfg, hooks=(recorder.event,))

    assert plans(aws_clients, cfg) == [] and keys(aws_clients, cfg) == [] and rest_apis(aws_clients, cfg.api_name) == []
    ops = [op for op, _ in recorder]
    assert ops.index("DeleteUsagePlan") < ops.index("DeleteRestApi")
    assert teardown(cfg).mutating_calls == []


def test_teardown_leaves_a_look_alike_key_in_place(provision, teardown, with_auth, aws_clients):
    cfg = with_auth("api_key")
    provision(cfg)
    foreign = aws_clients.apigateway.create_api_key(name=cfg.api_key_name, tags={"owner": "someone-else"})

    run = teardown(cfg)

    assert [k["id"] for k in keys(aws_clients, cfg)] == [foreign["id"]]
    assert sorted(c.action.value for c in run.changes("API key")) == ["delete", "skipped"]


# -- config errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api, problem", [
    ({"auth": "apikey"}, "api.auth: found 'apikey' (str), expected 'none', 'api_key' or 'iam'"),
    ({"throttle": {"rate_per_s": -1, "burst": 10}}, "api.throttle.rate_per_s: found -1 (int), expected greater than 0"),
    ({"throttle": {"rate_per_s": 10, "burst": 6000}}, "api.throttle.burst: found 6000 (int), expected less than or equal to 5000"),
    ({"usage_plan": {"quota": 0}}, "api.usage_plan.quota: found 0 (int), expected greater than or equal to 1"),
    ({"usage_plan": {"quota_period": "YEAR"}}, "api.usage_plan.quota_period: found 'YEAR' (str), expected 'DAY', 'WEEK' or 'MONTH'"),
])
def test_bad_auth_settings_exit_2_naming_the_key_before_any_aws_call(settings, cli, capsys, api, problem):
    calls = []
    cli.hooks.append(("before-call", lambda **kw: calls.append(kw)))
    settings["api"] = {**settings["api"], **api}

    code, out, err = cli(provision_main, capsys=capsys)

    assert code == 2
    assert problem in err
    assert calls == []


# -- what the user gets --------------------------------------------------------------------------------------


def test_the_keys_value_is_in_stack_json_postman_endpoints_http_and_the_printed_curl_commands(settings, cli, capsys, tmp_path, aws_clients):
    settings["api"] = {**settings["api"], "auth": "api_key"}
    out_dir = tmp_path / "out"

    code, out, err = cli(provision_main, "--outputs", str(out_dir), capsys=capsys)

    assert code == 0, err
    cfg_key = next(k for k in aws_clients.apigateway.get_api_keys(includeValues=True)["items"] if k["name"] == "demo-ItemsApi-key")
    value = cfg_key["value"]
    stack = json.loads((out_dir / "stack.json").read_text())
    assert stack["auth"]["mode"] == "api_key" and stack["auth"]["api_key"]["value"] == value
    assert stack["auth"]["usage_plan"]["name"] == "demo-ItemsApi-plan" and stack["auth"]["usage_plan"]["id"]
    assert all(f"-H 'x-api-key: {value}'" in line for line in stack["curl"])
    postman = json.loads((out_dir / "postman_collection.json").read_text())
    assert {v["key"]: v["value"] for v in postman["variable"]}["apiKey"] == value
    assert f"@apiKey = {value}" in (out_dir / "endpoints.http").read_text()
    assert f"curl -H 'x-api-key: {value}' -X POST" in out
    assert "anyone who has the invoke URL" not in err


def test_an_open_api_is_warned_of_once_per_command(settings, cli, capsys, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        code, out, err = cli(provision_main, "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 0, err
    assert sum("anyone who has the invoke URL can call the API" in r.getMessage() for r in caplog.records) == 1


# -- lost answers -------------------------------------------------------------------------------------------


def connection_closed():
    import botocore.exceptions

    return botocore.exceptions.ConnectionClosedError(endpoint_url="https://apigateway.us-east-1.amazonaws.com/usageplans")


# The plan and the key are looked for before a retry creates them (AWS would make a second one); adding the key to
# the plan is simply sent again (AWS answers ConflictException for a key already in it: done).
@pytest.mark.parametrize("operation, sent", [("CreateUsagePlan", 1), ("CreateApiKey", 1), ("CreateUsagePlanKey", 2)])
def test_a_create_whose_answer_is_lost_leaves_one_plan_and_one_key(provision, with_auth, aws_clients, inject, operation, sent):
    cfg = with_auth("api_key")
    lost = inject(operation, connection_closed(), after=True)

    first = provision(cfg, hooks=(lost.event,))

    assert lost.failed == 1 and first.calls(operation) == sent
    assert len(plans(aws_clients, cfg)) == 1 and len(keys(aws_clients, cfg)) == 1
    [plan] = plans(aws_clients, cfg)
    assert len(aws_clients.apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]) == 1
    assert provision(cfg).mutating_calls == []


def test_a_teardown_whose_stage_removal_answer_is_lost_looks_before_removing_again_and_completes(
        provision, teardown, with_auth, aws_clients, inject):
    cfg = with_auth("api_key")
    provision(cfg)
    lost = inject("UpdateUsagePlan", connection_closed(), after=True)

    run = teardown(cfg, hooks=(lost.event,))

    assert lost.failed == 1 and run.calls("UpdateUsagePlan") == 1
    assert plans(aws_clients, cfg) == [] and rest_apis(aws_clients, cfg.api_name) == []
