"""The host loop (dl/loop.py): evaluation times of a schedule, hand-derived, on fake runners
whose state is their virtual clock; and dense evaluation windows in a real run."""

import pytest

from dl.algorithms.base import Runner
from dl.errors import ConfigError
from dl.loop import Lane, Schedule, run_loop


class NoSignal:
    signum = None


def fake_lane(step: float) -> Lane:
    """A runner whose chunk advances its clock in steps of `step` until it reaches t_stop
    (like FedAvg rounds, which may overshoot an evaluation time); one joule per chunk."""

    def chunk(st, key, t):
        while st["t"] < t:
            st = {"t": st["t"] + step, "j": st["j"] + 1.0}
        return st

    def drain(st):
        return {"t": st["t"], "j": 0.0}, {"energy_compute_j": st["j"]}

    runner = Runner(
        {"t": 0.0, "j": 0.0}, chunk, lambda st: st["t"], lambda st: None, drain, lambda st: {}
    )
    return Lane(runner, runner.init, None)


def times(lanes, schedule, at_target=False):
    rows = []

    def record(now):
        rows.append(now)
        return {"round": 0}

    run_loop(
        lanes, schedule, record, {"round": 0}, schedule.every_s, NoSignal(), at_target=at_target
    )
    return rows


def test_regular_times_window_points_and_the_end():
    # every 30 s to 100 s: 30, 60, 90, then the end 100; the window [40, 50] step 5 adds
    # 40, 45, 50 (its points after 30 and before 60)
    s = Schedule(100.0, 30.0, ((40.0, 50.0, 5.0),))
    assert times([fake_lane(1.0)], s) == [30, 40, 45, 50, 60, 90, 100]
    assert times([fake_lane(1.0)], Schedule(100.0, 30.0)) == [30, 60, 90, 100]


def test_one_task_rows_at_its_clock_several_tasks_at_the_evaluation_time():
    # one lane stepping 7 s, evaluations every 30 s to 60 s: the chunk to 30 stops at 35
    # (5 steps), the next regular time after 35 is 60, reached at 63 -> rows at 35, 63
    assert times([fake_lane(7.0)], Schedule(60.0, 30.0)) == [35, 63]
    # at_target (several tasks): rows at max(slowest clock, evaluation time); two lanes of
    # 1-s and 7-s steps: min clocks 30 and 60 -> rows at 30, 60 (not the 7-s lane's 35, 63)
    two = [fake_lane(1.0), fake_lane(7.0)]
    assert times(two, Schedule(60.0, 30.0), at_target=True) == [30, 60]


def test_totals_accumulate_energy_over_chunks():
    lane = fake_lane(10.0)
    times([lane], Schedule(60.0, 30.0))
    # six 10-s steps, one joule each; energy_j = compute + radio
    assert lane.totals["energy_compute_j"] == 6.0 and lane.totals["energy_j"] == 6.0


@pytest.mark.parametrize(
    "windows", [[[50, 40, 5]], [[0, 10, 0]], [[0, 10]], ["x"], [[0, "a", 1]], "0,10,1"]
)
def test_bad_windows_are_one_config_error(windows):
    with pytest.raises(ConfigError, match="sim.eval_windows"):
        Schedule.of({"duration_s": 100, "eval_every_s": 10, "eval_windows": windows})


def test_dense_window_in_a_real_run(tmp_path):
    from dl.resume_config import compose_resolved
    from dl.simulate import simulate

    cfg = compose_resolved(
        [
            "algorithm=fedasync",
            "sim.num_nodes=8",
            "sim.duration_s=600",
            "sim.eval_every_s=300",
            "sim.eval_windows=[[400,410,5]]",
            "sim.progress=false",
            "logger=disabled",
        ]
    )
    simulate(cfg, tmp_path)
    from dl.io.metrics import read_metrics

    got = [r["virtual_time_s"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert got == [0, 300, 400, 405, 410, 600]
