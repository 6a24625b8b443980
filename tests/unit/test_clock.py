"""The run's clock is one small protocol (crudstack.clock.Clock): the real one and the simulated one."""

from __future__ import annotations

from crudstack.aws import Aws
from crudstack.clock import Clock, WallClock, fan, run_at
from crudstack.realistic import SimClock


def test_the_aws_doors_default_clock_and_the_simulated_one_are_both_clocks():
    assert isinstance(Aws(region="us-east-1").clock, WallClock)
    assert isinstance(Aws(region="us-east-1").clock, Clock) and isinstance(SimClock(), Clock)


def test_work_on_the_wall_clock_runs_in_this_thread_and_says_when_it_ended():
    clock = WallClock()
    before = clock()

    answer, ended = run_at(clock, 0.0, lambda: "done")

    assert answer == "done" and before <= ended <= clock()


def test_reads_fanned_out_on_a_simulated_clock_take_the_longest_ones_time_not_their_sum():
    clock = SimClock()
    aws = Aws(region="us-east-1", sleep=clock.sleep, clock=clock)

    def read(seconds: float) -> float:
        clock.sleep(seconds)
        return seconds

    assert fan(aws, read, [5.0, 2.0, 3.0]) == [5.0, 2.0, 3.0]
    assert clock() == 5.0
