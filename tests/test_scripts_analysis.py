"""The dl.analysis pieces the figure scripts now share (first_time, first_reaching_mean,
run_checked) and the script logic built on them, on hand-made values and fake runs."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scripts_loader import load_script

from dl.analysis.launch import is_done, run_checked
from dl.analysis.targets import first_reaching_mean, first_time

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


load = load_script


def test_first_time_up_and_down():
    t = [0.0, 10.0, 20.0, 30.0]
    assert first_time(t, [0.1, 0.5, 0.4, 0.9], 0.5) == 10.0  # >= : equality reaches
    assert first_time(t, [0.1, 0.5, 0.4, 0.9], 0.95) is None  # censored
    err = np.array([0.3, 0.2, 0.1, 0.05])
    assert first_time(np.array(t), err, 0.1, lower=True) == 20.0
    assert first_time(t, [None, 0.6, 0.7, 0.8], 0.5) == 10.0  # a missing value is skipped


def test_first_reaching_mean_needs_the_window_mean():
    rows = [{"a": v} for v in (0.9, 0.5, 0.5, 0.8, 0.8, 0.8)]
    # trailing means of 3: i=2: 0.633, i=3: 0.6, i=4: 0.7, i=5: 0.8 -> 0.7 first at i=4
    assert first_reaching_mean(rows, "a", 0.7, 3) == 4
    assert first_reaching_mean(rows, "a", 0.9, 1) == 0  # window 1 = first_reaching
    assert first_reaching_mean(rows, "a", 0.81, 3) is None
    assert first_reaching_mean(rows, "a", 0.55, 3, lower=True) is None  # means all > 0.55
    gap = rows[:3] + [{"b": 1}] + rows[4:]
    # windows containing row 3 (no "a") do not count: the first full window is rows 4-6 ...
    assert first_reaching_mean(gap, "a", 0.7, 3) is None  # ... of which there is none


FAKE = "import json, sys, pathlib; d = pathlib.Path(sys.argv[1]); d.mkdir(parents=True); "


def fake_cmd(run_dir: Path, status: str = "completed", rc: int = 0) -> list:
    body = f"(d / 'summary.json').write_text(json.dumps({{'status': '{status}'}})); sys.exit({rc})"
    return [sys.executable, "-c", FAKE + body, str(run_dir)]


def test_run_checked_runs_caches_and_stops_on_failure(tmp_path):
    d = tmp_path / "run"
    rec = run_checked(fake_cmd(d), d, tmp_path, key="k1")
    assert rec["status"] == "ran" and is_done(d, "k1")
    assert run_checked(fake_cmd(d), d, tmp_path, key="k1")["status"] == "done before"
    assert run_checked(fake_cmd(d), d, tmp_path, key="k2")["status"] == "ran"  # new command
    bad = tmp_path / "bad"
    with pytest.raises(SystemExit, match="bad: failed \\(exit 3\\)"):
        run_checked(fake_cmd(bad, rc=3), bad, tmp_path)


def test_async_comparison_reaching_raw_and_smoothed(tmp_path):
    rac = load("run_async_comparison")
    accs = (0.2, 0.71, 0.6, 0.72, 0.75, 0.81)
    rows = [
        {"virtual_time_s": 120.0 * i, "test_accuracy": a, "round": i} for i, a in enumerate(accs)
    ]
    assert rac.reaching(rows, 0.70)["virtual_time_s"] == 120.0  # first >= 0.70
    # means of 3: (0.2+0.71+0.6)/3 = 0.503, 0.677, 0.69, 0.76 -> first >= 0.70 at i = 5
    assert rac.reaching(rows, 0.70, window=3)["virtual_time_s"] == 600.0
    assert rac.reaching(rows, 0.9) is None


def test_gossip_vs_fl_time_to_target_on_the_seed_mean(tmp_path):
    gv = load("fig_gossip_vs_fl")
    # two seeds evaluated every 10 s over 30 s; error means 0.5, 0.3, 0.15, 0.1 (0.3 in float:
    # 0.30000000000000004, so the loose target is 0.31)
    runs = [
        {"t_s": [0, 10, 20, 30], "error": [0.5, 0.4, 0.2, 0.1], "bytes_per_node_per_hour": 1.0},
        {"t_s": [0, 10, 20, 30], "error": [0.5, 0.2, 0.1, 0.1], "bytes_per_node_per_hour": 3.0},
    ]
    out = gv.aggregate(runs, 30 / 3600, 10.0, (0.31, 0.12))
    assert out["error_mean"] == pytest.approx([0.5, 0.3, 0.15, 0.1])
    assert out["time_to_loose_s"] == 10.0 and out["time_to_tight_s"] == 30.0
    assert out["time_to_tight_s_per_seed"] == [30.0, 20.0]
    assert out["bytes_per_node_per_hour"] == 2.0


def test_scripts_use_the_library_definitions():
    """No script keeps its own time-to-target or launcher (issue 15)."""
    assert load("fig_overlay").first_time is first_time
    assert load("fig_gossip_vs_fl").first_time is first_time
    assert load("fig_overlay").run_checked is run_checked
    for name in ("fig_overlay", "fig_gossip_vs_fl", "run_async_comparison", "fig_outage"):
        text = (SCRIPTS / f"{name}.py").read_text()
        assert "import subprocess" not in text and "sys.path" not in text, name
