"""provision.py and teardown.py with --chaos 0.2 as a user runs them (subprocesses, real backoff
sleeps, a moto server on loopback): each of 50 seeds converges to a clean run's state with no
duplicate, every fault is retried, and the teardown (under chaos too) leaves nothing.

All 50 are long (about 10 s each): `python -m pytest -m slow tests/e2e/test_chaos_runs.py`;
CI runs the same property in-process on a sample of seeds (tests/functional/test_chaos.py).
"""

from __future__ import annotations

import pytest

from tests.support.harness import chaos_cycle

SEEDS = range(1, 51)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_a_run_with_a_fifth_of_calls_failing_converges_to_a_clean_runs_state(seed, moto_server, stack_cli, clean):
    verdict = chaos_cycle(moto_server, stack_cli, clean, seed, rate=0.2)

    assert verdict.problems == [], verdict.problems
    assert verdict.figures["injected"] >= 5
