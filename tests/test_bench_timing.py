"""dl.bench.timing.timed: wall time is the median per call, CPU time counts work, not waiting."""

import time

import pytest

from dl.bench.timing import timed


def test_sleeping_call_costs_wall_time_but_no_cpu():
    calls = []
    wall, cpu = timed(lambda: calls.append(time.sleep(0.02)), repeats=5)
    assert len(calls) == 6  # one warm-up call, then 5 timed
    assert wall == pytest.approx(0.02, abs=0.015)
    assert cpu < 0.01


def test_busy_call_costs_cpu_time():
    def spin():
        t = time.process_time()
        while time.process_time() - t < 0.02:
            pass

    wall, cpu = timed(spin, repeats=3)
    assert cpu >= 0.019 and wall >= 0.019
