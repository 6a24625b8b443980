"""AWS's documented control-plane rate quotas (crudstack/quotas.py): every key an operation botocore
knows, and the figures the retry policy relies on."""

from __future__ import annotations

import botocore.session
import pytest

from crudstack.quotas import (APIGATEWAY, APIGATEWAY_OTHER, CLOUDWATCH, DYNAMODB, LAMBDA, LAMBDA_OTHER, LOGS, SNS, Quota,
                              budgets, quota_for)


@pytest.mark.parametrize(("service", "table"), [("apigateway", APIGATEWAY), ("lambda", LAMBDA), ("cloudwatch", CLOUDWATCH),
                                                ("logs", LOGS), ("dynamodb", DYNAMODB), ("sns", SNS)])
def test_every_quota_is_keyed_by_an_operation_of_its_service_as_botocore_names_it(service, table):
    operations = set(botocore.session.get_session().get_service_model(service).operation_names)

    assert sorted(set(table) - operations) == []


def test_a_quota_says_how_long_one_request_of_its_budget_lasts():
    assert Quota(1, 30).interval_s == 30
    assert Quota(5, 2).interval_s == pytest.approx(0.4)
    assert APIGATEWAY_OTHER == Quota(10, 1, burst=40)


@pytest.mark.parametrize(("service", "operation", "interval_s"), [
    ("apigateway", "DeleteRestApi", 30), ("apigateway", "CreateDeployment", 5), ("apigateway", "GetResources", 0.4),
    ("apigateway", "PutIntegration", 0.1), ("lambda", "GetFunction", 0.01), ("lambda", "CreateFunction", 1 / 15),
])
def test_quota_for_finds_the_operations_own_quota_or_its_services_shared_one(service, operation, interval_s):
    assert quota_for(service, operation).interval_s == pytest.approx(interval_s)


def test_quota_for_knows_no_quota_for_invocations_nor_for_services_without_a_table():
    assert quota_for("lambda", "Invoke") is None
    assert quota_for("dynamodb", "PutItem") is None    # the data plane: capacity, not a request rate
    assert quota_for("iam", "CreateRole") is None      # IAM documents no request rate
    assert LAMBDA_OTHER.interval_s == pytest.approx(1 / 15)


def test_cloudwatch_alarm_writes_have_their_documented_rates():
    assert quota_for("cloudwatch", "PutMetricAlarm") == Quota(3, 1)
    assert quota_for("cloudwatch", "DescribeAlarms") == Quota(9, 1)
    assert quota_for("logs", "DescribeLogGroups") == Quota(5, 1)
    assert quota_for("dynamodb", "CreateTable") == Quota(2500, 1)


def test_sns_calls_have_the_rates_of_snss_api_reference_and_iam_none():
    assert quota_for("sns", "Subscribe") == Quota(100, 1)
    assert quota_for("sns", "ListSubscriptionsByTopic") == Quota(30, 1)
    assert quota_for("sns", "TagResource") == Quota(10, 1)
    assert quota_for("sns", "CreateTopic") is None   # no figure on its page: left out, not guessed
    assert quota_for("iam", "TagRole") is None


def test_an_api_gateway_call_with_its_own_quota_is_charged_to_the_accounts_total_as_well():
    assert [key for key, _ in budgets("apigateway", "CreateResource")] == ["apigateway:CreateResource", "apigateway:*"]
    assert [key for key, _ in budgets("apigateway", "PutMethod")] == ["apigateway:*"]
    # Lambda's shared rate excludes the two operations with their own; DynamoDB's control plane includes ListBackups
    assert [key for key, _ in budgets("lambda", "GetFunction")] == ["lambda:GetFunction"]
    assert [key for key, _ in budgets("dynamodb", "ListBackups")] == ["dynamodb:ListBackups", "dynamodb:*"]
