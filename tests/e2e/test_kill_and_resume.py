"""provision.py and teardown.py killed (SIGKILL) at seeded random moments, then run to completion:
the account ends as a clean run leaves it, with no duplicate of any kind of resource, and a
teardown after it leaves nothing of ours. Each kill point is the n-th AWS call the command
reports, n drawn from the seed over the whole run, plus up to 15 ms so some kills land inside a
call (tests/support/harness.py).

CI runs a sample of the seeds; `python -m pytest -m slow tests/e2e` runs all of them (40 over
provision, 20 over teardown); bench/reliability.py prints the figures for RELIABILITY.md.
"""

from __future__ import annotations

import pytest

from tests.support import console_stack
from tests.support.harness import Cli, MotoServer, adoption_baseline, kill_and_resume, kill_and_resume_adoption

PROVISION_SEEDS = range(1, 41)
TEARDOWN_SEEDS = range(1, 21)
SAMPLED_PROVISION = (3, 7, 11, 12, 17)   # kill points spread from the first calls to the last
SAMPLED_TEARDOWN = (1, 7)   # a teardown makes fewer calls since its reads run at once: these still span it
ADOPTION_SEEDS = range(1, 21)
SAMPLED_ADOPTION = (2,)


def slow_unless_sampled(seeds, sampled):
    return [seed if seed in sampled else pytest.param(seed, marks=pytest.mark.slow) for seed in seeds]


@pytest.mark.parametrize("seed", slow_unless_sampled(PROVISION_SEEDS, SAMPLED_PROVISION))
def test_provision_killed_at_a_random_moment_is_finished_by_the_next_run_without_duplicates_or_orphans(
        seed, moto_server, stack_cli, clean):
    verdict = kill_and_resume(moto_server, stack_cli, clean, "provision", seed)

    assert verdict.problems == [], f"killed after {verdict.calls_before_cut} calls at {verdict.cut_at}: {verdict.problems}"


@pytest.mark.parametrize("seed", slow_unless_sampled(TEARDOWN_SEEDS, SAMPLED_TEARDOWN))
def test_teardown_killed_at_a_random_moment_is_finished_by_the_next_teardown_leaving_nothing(seed, moto_server, stack_cli, clean):
    verdict = kill_and_resume(moto_server, stack_cli, clean, "teardown", seed)

    assert verdict.problems == [], f"killed after {verdict.calls_before_cut} calls at {verdict.cut_at}: {verdict.problems}"


@pytest.mark.parametrize(("command", "sampled"), [("provision", SAMPLED_PROVISION), ("teardown", SAMPLED_TEARDOWN)])
def test_the_kill_points_sampled_in_ci_cover_the_first_and_last_part_of_the_run(command, sampled, clean):
    import random

    total = clean.provision_calls if command == "provision" else clean.teardown_calls
    points = sorted(random.Random(f"kill:{command}:{seed}").randint(0, total) for seed in sampled)
    halves = {2 * p // (total + 1) for p in points}
    assert halves == {0, 1}, points


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    """A moto server holding what --adopt meets: AWS's managed policies, TagResource on a REST API's ARN."""
    with MotoServer(log=tmp_path_factory.mktemp("moto-adopt") / "moto.log", as_console_left_it=True) as server:
        yield server


@pytest.fixture(scope="module")
def adopt_cli(console_server, tmp_path_factory) -> Cli:
    import yaml

    from crudstack.config import ROOT

    settings = console_stack.tutorial_settings(yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8")))
    return Cli(console_server.endpoint, tmp_path_factory.mktemp("cli-adopt"), settings=settings)


@pytest.fixture(scope="module")
def clean_adoption(console_server, adopt_cli):
    return adoption_baseline(console_server, adopt_cli, console_stack.build)


@pytest.mark.parametrize("seed", slow_unless_sampled(ADOPTION_SEEDS, SAMPLED_ADOPTION))
def test_an_adoption_killed_at_a_random_moment_is_finished_by_the_next_run_without_duplicates_or_orphans(
        seed, console_server, adopt_cli, clean_adoption):
    verdict = kill_and_resume_adoption(console_server, adopt_cli, clean_adoption, seed, console_stack.build)

    assert verdict.problems == [], f"killed after {verdict.calls_before_cut} calls at {verdict.cut_at}: {verdict.problems}"
