"""The model of AWS (crudstack/realistic.py) keeps its own numbers, typed from AWS's pages; the product keeps
its own (crudstack/quotas.py, crudstack/config.py). Neither reads the other, so a wrong number on either side
shows here as a difference instead of grading itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crudstack import config as product_config
from crudstack import quotas as product
from crudstack import realistic as model

ROOT = Path(__file__).resolve().parents[2]


def rate_differences() -> list[str]:
    """Every operation whose documented rate (or the rates it is charged to) differs between the two tables."""
    differences = []
    services = set(model.AWS_RATES) | set(product.OWN)
    for service in sorted(services):
        operations = set(model.AWS_RATES.get(service, {})) | set(product.OWN.get(service, {}))
        operations.discard("*")
        operations |= {"SomeOperationWithoutItsOwnRate"} | model.UNRATED.get(service, set())
        for operation in sorted(operations):
            theirs = [(key, (q.requests, q.per_s, q.burst)) for key, q in product.budgets(service, operation)]
            ours = [(key, (r.requests, r.per_s, r.burst)) for key, r in model.rates_of(service, operation)]
            if theirs != ours:
                differences.append(f"{service}.{operation}: product {theirs}, model {ours}")
    return differences


def test_the_products_rate_quotas_are_the_ones_the_model_took_from_aws_pages():
    assert rate_differences() == []


def test_a_wrong_rate_in_the_product_shows_as_a_difference(monkeypatch):
    monkeypatch.setitem(product.CLOUDWATCH, "PutMetricAlarm", product.Quota(16, 1))

    assert rate_differences() == ["cloudwatch.PutMetricAlarm: product [('cloudwatch:PutMetricAlarm', (16, 1, None))], "
                                  "model [('cloudwatch:PutMetricAlarm', (3, 1, None))]"]


def test_a_product_that_charges_no_shared_rate_shows_as_a_difference(monkeypatch):
    monkeypatch.setattr(product, "budgets", lambda service, operation: [])

    assert "apigateway.CreateResource" in " ".join(rate_differences())


def test_the_reserved_environment_names_are_the_same_in_the_product_and_the_model():
    assert model.RESERVED_ENVIRONMENT == product_config.LAMBDA_RESERVED_VARIABLES


def test_the_model_imports_nothing_from_the_code_it_checks():
    tree = ast.parse((ROOT / "crudstack" / "realistic.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}

    assert sorted(name for name in imported if name.startswith("crudstack")) == []


@pytest.mark.parametrize("service", sorted(model.AWS_RATES))
def test_every_service_the_model_throttles_answers_as_that_service_does(service):
    assert service in model.THROTTLED


def test_local_behaviour_realistic_runs_the_same_model_with_every_behaviour_on(tmp_path):
    local = model.local_model(tmp_path, 0.5)

    assert local.quotas
    assert local.delays == model.Delays.typical().scaled(0.5)
    assert local.delays.api_write > 0 and local.delays.lists > 0
    assert {"api_busy", "list_lag"} <= set(local.STATE)   # kept between runs in the state dir
