"""Endpoints for --target aws are botocore's to resolve, as the AWS SDKs document
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html); the invoke URL takes an emulator's
/restapis/.../_user_request_ form only where API Gateway's endpoint is not one of AWS's own."""

from __future__ import annotations

import pytest

from crudstack.aws import emulator_endpoint
from crudstack.cli import connect
from crudstack.config import load_config


@pytest.fixture
def config():
    return load_config()


@pytest.fixture(autouse=True)
def no_configured_endpoints(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_API_GATEWAY",
                 "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)


def test_a_service_specific_endpoint_wins_over_the_general_one(config, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4001")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:4002")

    aws, endpoint = connect(config, "aws")

    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4002"
    assert aws.client("lambda").meta.endpoint_url == "http://127.0.0.1:4001"
    assert endpoint == "http://127.0.0.1:4001"   # API Gateway's: the invoke URL is the emulator's


def test_ignoring_configured_endpoints_reaches_aws_and_prints_the_execute_api_url(config, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4001")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")

    aws, endpoint = connect(config, "aws")

    assert aws.client("apigateway").meta.endpoint_url == f"https://apigateway.{config.region}.amazonaws.com"
    assert endpoint is None


def test_an_emulator_named_for_api_gateway_alone_gives_the_emulator_url_form(config, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_API_GATEWAY", "http://localhost:4566")

    aws, endpoint = connect(config, "aws")

    assert endpoint == "http://localhost:4566"
    assert aws.client("dynamodb").meta.endpoint_url == f"https://dynamodb.{config.region}.amazonaws.com"


def test_without_configured_endpoints_every_client_goes_to_aws(config):
    aws, endpoint = connect(config, "aws")

    assert endpoint is None
    assert aws.endpoint_url is None


@pytest.mark.parametrize("url", [
    "https://apigateway.us-east-1.amazonaws.com", "https://apigateway-fips.us-gov-west-1.amazonaws.com",
    "https://apigateway.cn-north-1.amazonaws.com.cn", "https://apigateway.eu-west-1.api.aws",
    "https://vpce-0123-abcd.apigateway.us-east-1.vpce.amazonaws.com",
])
def test_an_endpoint_of_aws_itself_is_not_an_emulator(url):
    assert emulator_endpoint(url) is None


@pytest.mark.parametrize("url", ["http://localhost:4566", "http://127.0.0.1:5000/", "https://gateway.example.com",
                                 "https://amazonaws.com.example.net"])
def test_any_other_endpoint_is_an_emulator(url):
    assert emulator_endpoint(url) == url
