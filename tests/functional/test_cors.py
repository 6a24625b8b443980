"""CORS, as the console's "Enable CORS" sets it up, against moto: an OPTIONS method with a MOCK
integration on each resource that serves a route, its headers from config.yaml's api.cors, and the
allowed origins handed to every function in ALLOWED_ORIGINS."""

from __future__ import annotations

import pytest

from crudstack.plan import Action
from crudstack.steps.cors import CORS_ALLOW_HEADERS
from tests.functional.conftest import assert_one_complete_stack, rest_apis


def preflight(aws_clients, cfg, path: str) -> dict:
    """The OPTIONS method of `path`: {"method": ..., "method_response": ..., "integration": ..., "integration_response": ...}."""
    apigw = aws_clients.apigateway
    api_id = rest_apis(aws_clients, cfg.api_name)[0]["id"]
    resource_id = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == path)
    where = {"restApiId": api_id, "resourceId": resource_id, "httpMethod": "OPTIONS"}
    return {
        "where": where,
        "method": apigw.get_method(**where),
        "method_response": apigw.get_method_response(**where, statusCode="200"),
        "integration": apigw.get_integration(**where),
        "integration_response": apigw.get_integration_response(**where, statusCode="200"),
    }


def static_headers(found: dict) -> dict[str, str]:
    """header -> value, as the integration response maps them ("'value'" is a static value)."""
    return {target.removeprefix("method.response.header."): source.strip("'")
            for target, source in found["integration_response"]["responseParameters"].items()}


@pytest.fixture
def two_origins(settings, make_config):
    settings["api"]["cors"] = {"allowed_origins": ["https://shop.example.com", "http://localhost:3000"], "max_age_s": 60}
    return make_config(settings)


@pytest.fixture
def one_origin(settings, make_config):
    settings["api"]["cors"] = {"allowed_origins": ["https://shop.example.com"], "max_age_s": 300}
    return make_config(settings)


def test_each_resource_gets_an_options_method_with_a_mock_integration_like_enable_cors_makes(provision, config, aws_clients):
    provision(config)

    for path, methods in (("/items", "GET,POST,OPTIONS"), ("/items/{id}", "DELETE,GET,PUT,OPTIONS")):
        found = preflight(aws_clients, config, path)
        assert found["method"]["authorizationType"] == "NONE"
        assert found["integration"]["type"] == "MOCK"
        assert found["integration"]["requestTemplates"] == {"application/json": '{"statusCode": 200}'}
        declared = found["method_response"]["responseParameters"]
        assert declared == {f"method.response.header.{h}": False for h in
                            ("Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
                             "Access-Control-Allow-Origin", "Access-Control-Max-Age")}
        assert found["method_response"]["responseModels"] == {"application/json": "Empty"}
        assert set(found["integration_response"]["responseParameters"]) == set(declared)
        assert static_headers(found) == {"Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                                         "Access-Control-Allow-Methods": methods,
                                         "Access-Control-Allow-Origin": "*", "Access-Control-Max-Age": "600"}
    assert "If-Match" in CORS_ALLOW_HEADERS.split(",")


def test_one_configured_origin_is_the_preflights_allowed_origin(provision, one_origin, aws_clients):
    provision(one_origin)

    headers = static_headers(preflight(aws_clients, one_origin, "/items"))
    assert (headers["Access-Control-Allow-Origin"], headers["Access-Control-Max-Age"]) == ("https://shop.example.com", "300")


def test_several_origins_make_a_star_preflight_and_reach_every_function_to_enforce(provision, two_origins, aws_clients):
    provision(two_origins)

    assert static_headers(preflight(aws_clients, two_origins, "/items/{id}"))["Access-Control-Allow-Origin"] == "*"
    for base in two_origins.lambda_.functions:
        variables = aws_clients.awslambda.get_function_configuration(FunctionName=two_origins.function_name(base))["Environment"]["Variables"]
        assert variables["ALLOWED_ORIGINS"] == "https://shop.example.com,http://localhost:3000"


def test_the_preflights_are_planned_as_their_own_changes_and_a_second_run_makes_no_call(provision, config):
    first = provision(config)

    assert sorted(c.name for c in first.changes("CORS preflight", Action.CREATE)) == ["OPTIONS /items", "OPTIONS /items/{id}"]
    assert first.calls("PutMethodResponse") == first.calls("PutIntegrationResponse") == 2
    second = provision(config)
    assert second.mutating_calls == []
    assert second.outcomes["API Gateway REST API"] == "unchanged"


def test_changing_the_allowed_origins_updates_the_preflights_the_functions_and_redeploys(provision, config, one_origin, aws_clients):
    provision(config)

    changed = provision(one_origin)

    updates = changed.changes("CORS preflight", Action.UPDATE)
    assert sorted(c.name for c in updates) == ["OPTIONS /items", "OPTIONS /items/{id}"]
    assert updates[0].diffs["Access-Control-Allow-Origin"] == ("'*'", "'https://shop.example.com'")
    assert {c.name for c in changed.changes("function", Action.UPDATE)} == {one_origin.function_name(b) for b in one_origin.lambda_.functions}
    assert changed.changes("deployment", Action.CREATE)
    assert changed.calls("UpdateFunctionCode") == 0
    assert static_headers(preflight(aws_clients, one_origin, "/items"))["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert provision(one_origin).mutating_calls == []


@pytest.mark.parametrize("drift", ["integration response", "method response", "whole method"])
def test_a_preflight_changed_in_the_console_is_put_back(provision, config, aws_clients, drift):
    provision(config)
    apigw = aws_clients.apigateway
    where = preflight(aws_clients, config, "/items")["where"]
    if drift == "integration response":
        apigw.put_integration_response(**where, statusCode="200", responseTemplates={"application/json": ""},
                                       responseParameters={"method.response.header.Access-Control-Allow-Origin": "'https://evil.example'"})
    elif drift == "method response":
        apigw.delete_method_response(**where, statusCode="200")
    else:
        apigw.delete_method(**where)

    repaired = provision(config)

    expected = Action.CREATE if drift == "whole method" else Action.UPDATE
    assert [c.name for c in repaired.changes("CORS preflight", expected)] == ["OPTIONS /items"]
    assert static_headers(preflight(aws_clients, config, "/items"))["Access-Control-Allow-Origin"] == "*"
    # The console edit was never deployed, and what is put back is what the stage's deployment holds.
    assert not repaired.changes("deployment", Action.CREATE)
    assert_one_complete_stack(aws_clients, config)
    assert provision(config).mutating_calls == []


def test_removing_every_route_of_a_resource_removes_its_preflight_and_narrows_the_other(provision, config, settings, make_config, aws_clients):
    provision(config)
    for base in ("GetItemFunction", "UpdateItemFunction", "DeleteItemFunction"):
        del settings["lambda"]["functions"][base]
    settings["lambda"]["functions"].pop("GetItemsFunction")
    smaller = make_config(settings)

    run = provision(smaller)

    assert [c.name for c in run.changes("CORS preflight", Action.DELETE)] == ["OPTIONS /items/{id}"]
    assert [c.name for c in run.changes("CORS preflight", Action.UPDATE)] == ["OPTIONS /items"]
    assert static_headers(preflight(aws_clients, smaller, "/items"))["Access-Control-Allow-Methods"] == "POST,OPTIONS"
    assert provision(smaller).mutating_calls == []
