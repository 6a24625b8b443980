"""The --chaos options (and their CRUDSTACK_CHAOS* variables) into a ChaosSpec, every problem named."""

from __future__ import annotations

import pytest

from crudstack.chaos import DEFAULT_FAULTS, ChaosSpec, parse_spec
from crudstack.errors import ConfigError


def test_no_rate_means_no_chaos():
    assert parse_spec(None, environ={}) is None


def test_a_rate_alone_draws_every_transient_fault_on_every_call_with_a_new_seed():
    spec = parse_spec("0.2", new_seed=lambda: 4242)

    assert spec == ChaosSpec(rate=0.2, seed=4242, faults=DEFAULT_FAULTS, calls=None)
    assert "access-denied" not in spec.faults   # permanent: only when asked for


def test_options_fall_back_to_the_environment_and_flags_win():
    env = {"CRUDSTACK_CHAOS": "0.5", "CRUDSTACK_CHAOS_SEED": "7", "CRUDSTACK_CHAOS_FAULTS": "throttling", "CRUDSTACK_CHAOS_CALLS": "CreateRole"}

    assert parse_spec(None, environ=env) == ChaosSpec(0.5, 7, ("throttling",), frozenset({"CreateRole"}))
    assert parse_spec("0.1", "8", environ=env).seed == 8


def test_calls_are_taken_as_botocore_or_python_names():
    spec = parse_spec("1", "1", calls="create_function, PutMetricAlarm,get_rest_apis")

    assert spec.calls == frozenset({"CreateFunction", "PutMetricAlarm", "GetRestApis"})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        parse_spec("2", "seven", "throttling,read-timout", "CreateRol")

    problems = raised.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("--chaos: found '2'")
    assert problems[1].startswith("--chaos-seed: found 'seven'")
    assert "did you mean 'read-timeout'?" in problems[2]
    assert "did you mean 'CreateRole'?" in problems[3]
    assert raised.value.exit_code == 2


def test_describe_says_what_fails_and_how_to_repeat_it():
    spec = ChaosSpec(0.25, 3, ("throttling",), frozenset({"CreateRole"}))

    assert spec.describe() == "25% of AWS calls of CreateRole fail on purpose (seed 3; faults: throttling)"
