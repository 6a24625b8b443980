"""How many round trips a plan waits for (issue 24): every call costs one simulated second, so the
simulated time a plan takes is its longest chain of reads, each waiting for the one before. A fresh stack
has nothing to find: the caller identity, then one or two rounds of reads, not a chain; a re-run reads
what it found's children, at once where they do not depend on each other."""

from __future__ import annotations

from crudstack.plan import Context
from crudstack.runner import Reporter, run
from crudstack.steps import STEPS
from crudstack.steps.monitoring import MonitoringStep


def plan_depth(config, new_aws, clock, *, teardown: bool = False, steps=STEPS, paced: list | None = None) -> float:
    """`paced`, if given, gets how long each call waited for its turn under AWS's documented rate (the quota
    limiter, crudstack/aws.py), on its own thread's simulated time."""
    aws = new_aws(config, (("before-call", lambda **_: clock.sleep(1.0)),), clock)
    if paced is not None:
        acquire = aws.limiter.acquire

        def timed(service, operation, **kwargs):
            before = clock.now
            acquire(service, operation, **kwargs)
            paced.append(clock.now - before)

        aws.limiter.acquire = timed
    start = clock.now
    run(Context(config=config, aws=aws, target="aws"), Reporter(), apply=False, teardown=teardown, steps=steps)
    return clock.now - start


def test_planning_a_fresh_stack_waits_for_the_identity_and_at_most_two_rounds_of_reads(config, new_aws, clock):
    depth = plan_depth(config, new_aws, clock)
    assert depth <= 3, depth   # 4 before issue 24: the functions' policies were read after the API's listing


def test_planning_a_stack_that_is_there_waits_for_at_most_five_round_trips(config, new_aws, clock, provision):
    provision()
    depth = plan_depth(config, new_aws, clock)
    assert depth <= 5, depth   # 8 before issue 24: step 4's reads one after another, alarms' tags in waves of 8


def test_planning_the_teardown_of_the_monitoring_step_reads_each_kind_and_its_tags_at_once(config, new_aws, clock, provision):
    provision()
    paced: list[float] = []
    depth = plan_depth(config, new_aws, clock, teardown=True, steps=[s for s in STEPS if isinstance(s, MonitoringStep)],
                       paced=paced)
    # The identity, the listings, their tags; 5 before: the topic's tags, then the groups'. The tags' round also
    # waits for CloudWatch's documented ListTagsForResource rate (10/s, burst 10: the 17 alarms' last read goes
    # 0.7 s after the first); that round is the only one with more calls than a burst, so the chain is three
    # round trips plus the longest turn one call waited for.
    assert depth - max(paced, default=0.0) <= 3, (depth, paced)
