"""Reserved concurrency (lambda.reserved_concurrency, lambda.functions.<Name>.reserved_concurrency)
on moto: set on create, put or deleted only where it differs from GetFunctionConcurrency, found
again and unchanged on a re-run, shown by --plan, and gone with the function at teardown."""

from __future__ import annotations

from crudstack.cli import provision_main


def reservations(aws_clients, cfg) -> dict[str, int | None]:
    return {base: aws_clients.awslambda.get_function_concurrency(FunctionName=cfg.function_name(base))
            .get("ReservedConcurrentExecutions") for base in cfg.lambda_.functions}


def test_by_default_no_function_is_reserved_and_no_concurrency_call_is_made(provision, config, aws_clients):
    first = provision(config)
    second = provision(config)

    assert reservations(aws_clients, config) == dict.fromkeys(config.lambda_.functions)
    assert not [op for op in first.mutating_calls if "Concurrency" in op]
    assert second.mutating_calls == []


def test_a_new_function_gets_its_own_reservation_or_the_lambda_default_after_it_is_created(
        provision, settings, make_config, aws_clients, recorder):
    settings["lambda"]["reserved_concurrency"] = 5
    settings["lambda"]["functions"]["UpdateItemFunction"]["reserved_concurrency"] = 2
    settings["lambda"]["functions"]["DeleteItemFunction"]["reserved_concurrency"] = 0
    cfg = make_config(settings)

    first = provision(cfg, hooks=(recorder.event,))

    assert reservations(aws_clients, cfg) == {"CreateItemFunction": 5, "GetItemsFunction": 5, "GetItemFunction": 5,
                                              "UpdateItemFunction": 2, "DeleteItemFunction": 0}
    for base in cfg.lambda_.functions:
        name = cfg.function_name(base)
        created, reserved = (next(i for i, (op, p) in enumerate(recorder) if op == wanted and p["FunctionName"] == name)
                             for wanted in ("CreateFunction", "PutFunctionConcurrency"))
        assert created < reserved, f"{name} exists before its reservation is put"
    assert first.calls("PutFunctionConcurrency") == 5


def test_a_second_provision_finds_every_reservation_and_makes_no_mutating_call(provision, settings, make_config):
    settings["lambda"]["reserved_concurrency"] = 3
    settings["lambda"]["functions"]["GetItemsFunction"]["reserved_concurrency"] = 0
    cfg = make_config(settings)
    provision(cfg)

    second = provision(cfg)

    assert second.mutating_calls == []
    assert second.aws.stats.writes == 0
    assert set(second.outcomes.values()) == {"unchanged"}
    assert second.calls("GetFunctionConcurrency") == 5
    assert second.changes("function concurrency") == []


def test_changing_one_reservation_puts_only_that_one(provision, settings, make_config, aws_clients, recorder):
    settings["lambda"]["functions"]["GetItemFunction"]["reserved_concurrency"] = 2
    provision(make_config(settings))
    settings["lambda"]["functions"]["GetItemFunction"]["reserved_concurrency"] = 7
    cfg = make_config(settings)

    second = provision(cfg, hooks=(recorder.event,))

    assert second.mutating_calls == ["lambda.PutFunctionConcurrency"]
    assert recorder.params("PutFunctionConcurrency") == [{"FunctionName": "demo-GetItemFunction",
                                                          "ReservedConcurrentExecutions": 7}]
    [change] = second.changes("function concurrency")
    assert change.diffs == {"ReservedConcurrentExecutions": (2, 7)}
    assert second.outcomes["Lambda functions"] == "updated"
    assert reservations(aws_clients, cfg)["GetItemFunction"] == 7


def test_removing_a_reservation_from_config_yaml_deletes_it(provision, settings, make_config, aws_clients):
    settings["lambda"]["functions"]["GetItemFunction"]["reserved_concurrency"] = 0
    provision(make_config(settings))
    del settings["lambda"]["functions"]["GetItemFunction"]["reserved_concurrency"]
    cfg = make_config(settings)

    second = provision(cfg)

    assert second.mutating_calls == ["lambda.DeleteFunctionConcurrency"]
    assert second.changes("function concurrency")[0].diffs == {"ReservedConcurrentExecutions": (0, "unreserved")}
    assert reservations(aws_clients, cfg)["GetItemFunction"] is None
    assert provision(cfg).mutating_calls == []


def test_a_reservation_changed_by_hand_is_put_back(provision, settings, make_config, aws_clients):
    settings["lambda"]["reserved_concurrency"] = 4
    cfg = make_config(settings)
    provision(cfg)
    aws_clients.awslambda.put_function_concurrency(FunctionName="demo-GetItemsFunction", ReservedConcurrentExecutions=1)
    aws_clients.awslambda.delete_function_concurrency(FunctionName="demo-GetItemFunction")

    again = provision(cfg)

    assert sorted(again.mutating_calls) == ["lambda.PutFunctionConcurrency"] * 2
    assert set(reservations(aws_clients, cfg).values()) == {4}


def test_plan_shows_the_reservation_it_would_put_and_sends_no_mutating_call(provision, settings, make_config, cli,
                                                                            capsys):
    provision(make_config(settings))
    settings["lambda"]["functions"]["GetItemsFunction"]["reserved_concurrency"] = 2
    sent = []
    cli.hooks.append(("before-call", lambda model, **_: sent.append(model.name)))

    code, out, _ = cli(provision_main, "--plan", capsys=capsys)

    assert code == 2
    assert "~ function concurrency demo-GetItemsFunction (ReservedConcurrentExecutions: unreserved -> 2)" in out
    assert "GetFunctionConcurrency" in sent
    assert [op for op in sent if not op.startswith(("Get", "List", "Describe"))] == []


def test_teardown_deletes_reserved_functions_with_their_reservation(provision, teardown, settings, make_config,
                                                                    aws_clients):
    settings["lambda"]["reserved_concurrency"] = 2
    cfg = make_config(settings)
    provision(cfg)

    gone = teardown(cfg)

    assert gone.calls("DeleteFunction") == 5
    assert gone.calls("DeleteFunctionConcurrency") == 0, "deleting a function deletes its reservation"
    assert aws_clients.awslambda.list_functions()["Functions"] == []
