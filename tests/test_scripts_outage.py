"""scripts/fig_outage.py: its configs go through dl.run's checks, and its merge of the grid
run with the dense run and its outage checks, on hand-made run folders (no simulation)."""

import json
import sys
from pathlib import Path

import pytest
from scripts_loader import load_script

from dl.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fig_outage.py"


@pytest.fixture(scope="module")
def fo():
    return load_script("fig_outage")


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("sim.num_nodse=3", "sim.num_nodse"),  # a misspelt key
        ("+sim.foo=1", "sim.foo"),  # an added key is refused too
        ("sim.num_nodes=0", "sim.num_nodes"),  # out of the schema's range
        ("algorithm.max_trainings=4", "max_trainings"),  # fedasync has no such key
        ("server=nope", "server"),  # an unknown group option
    ],
)
def test_composed_config_is_checked_as_dl_run_checks_it(fo, bad, needle):
    with pytest.raises(ConfigError, match=needle):
        fo.compose_cfg("fedasync", [bad])


def test_outage_window_is_the_middle_half(fo):
    # server=outage_mid: down for [D/4, 3D/4); D = 120 s -> [30, 90)
    cfg = fo.compose_cfg("dwa", ["sim.duration_s=120", "sim.num_nodes=20"])
    assert fo.outage_window(cfg) == (30.0, 90.0)
    assert cfg["sim"]["num_nodes"] == 20 and cfg["algorithm"]["name"] == "dwa"


def test_a_bad_override_stops_the_script_with_one_line(tmp_path, capsys, monkeypatch, fo):
    argv = ["fig_outage.py", "--runs", str(tmp_path), "--out", str(tmp_path), "sim.nodes=3"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as e:
        fo.main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: sim.nodes=3")
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


def write_run(d: Path, rows: list[dict], summary: dict | None = None) -> None:
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "summary.json").write_text(json.dumps(summary or {"status": "completed"}))


def test_dense_window_and_row_tags(tmp_path, fo):
    """Outage [30, 90) of 120 s, grid every 30 s, --dense-s 3: server algorithms get the window
    [90, 93] at 1 s; rows at 0, 30, 60, 90, 120 are the grid (full), those at 91-93 the
    window (server: node metrics dropped)."""
    cfg = fo.compose_cfg("dwa", ["sim.duration_s=120"])
    assert fo.dense_window("dwa", cfg, 3.0) == ["sim.eval_windows=[[90.0,93.0,1]]"]
    assert fo.dense_window("gossip", cfg, 3.0) == [] and fo.dense_window("dwa", cfg, 0.0) == []
    cfg = fo.compose_cfg("dwa", ["sim.duration_s=120", *fo.dense_window("dwa", cfg, 3.0)])
    assert cfg["sim"]["eval_windows"] == [[90.0, 93.0, 1]]  # checked and composed as dl.run

    def row(t):
        return {"virtual_time_s": float(t), "test_accuracy": t / 200, "updates_applied": t}

    times = (0, 30, 60, 90, 91, 92, 93, 120)
    rows = [row(t) | {"node_accuracy_p90": 0.5, "wall_time_s": 1.0 + t} for t in times]
    write_run(tmp_path / "dwa", rows, {"status": "completed", "strategy": "vmap"})
    got, meta = fo.load("dwa", cfg, tmp_path)
    assert [r["virtual_time_s"] for r in got] == list(times)
    assert [r["eval"] for r in got] == ["full"] * 4 + ["server"] * 3 + ["full"]
    assert all(("node_accuracy_p90" in r) == (r["eval"] == "full") for r in got)
    assert meta["wall_time_s"] == 121.0 and meta["strategy"] == "vmap"
    assert meta["outage"] == [30.0, 90.0] and meta["eval_windows"] == [[90.0, 93.0, 1]]
    assert meta["num_nodes"] == cfg["sim"]["num_nodes"] and meta["overrides"] is None


def test_analyse_frozen_server_and_time_to_target(fo):
    """FedAsync's server accuracy is flat during the outage [30, 90): frozen. Times to target
    are those of the first full evaluation at or above it (0.75 at t = 90; 0.80 never)."""
    acc = {0: 0.5, 30: 0.7, 60: 0.7, 90: 0.7, 120: 0.76}
    rows = [
        {"virtual_time_s": float(t), "test_accuracy": a, "eval": "full", "wall_time_s": 1.0}
        for t, a in acc.items()
    ]
    rows[3]["test_accuracy"] = 0.75  # 90 s: the server is back
    res = fo.analyse({"fedasync": rows}, 30.0, 90.0, 30.0)
    fa = res["fedasync"]
    assert fa["server_frozen_during_outage"] is False  # 0.70 -> 0.75 at t = 90 (inclusive)
    assert fa["time_to_0.75_s"] == 90.0 and fa["time_to_0.70_s"] == 30.0
    assert fa["time_to_0.80_s"] is None
    rows[3]["test_accuracy"] = 0.7
    fa = fo.analyse({"fedasync": rows}, 30.0, 90.0, 30.0)["fedasync"]
    assert fa["server_frozen_during_outage"] is True
    assert fa["server_accuracy_range_during_outage"] == [0.7, 0.7]
    assert fa["time_to_0.75_s"] == 120.0


def test_every_measure_case_composes(fo):
    """--measure's overrides pass dl.run's checks (they were composed unchecked before)."""
    for alg, n, extra in fo.MEASURE_CASES:
        cfg = fo.compose_cfg(alg, fo.measure_overrides(alg, n, extra))
        assert cfg["sim"]["num_nodes"] == n and cfg["task"]["train"]["local_steps"] == 5


def test_plot_only_reads_each_runs_own_config(tmp_path, monkeypatch, fo):
    """--plot-only composes nothing: the outage window comes from the run's config.yaml (here
    [40, 80), not the experiment's), the overrides from Hydra's record of the run."""
    import yaml

    cfg = fo.compose_cfg("fedasync", ["sim.duration_s=120"])
    cfg["server"]["outages"] = [[40.0, 80.0]]
    cfg["sim"]["eval_every_s"] = 20  # the run's own grid, not the experiment's 30 s
    # every 20 s; flat at 0.6 from the outage start (40) to its end (80, inclusive), 0.8 at 100
    acc = [0.5, 0.6, 0.6, 0.6, 0.6, 0.8, 0.8]
    rows = [
        {"virtual_time_s": 20.0 * i, "test_accuracy": a, "updates_applied": i, "wall_time_s": 1.0}
        for i, a in enumerate(acc)
    ]
    run = tmp_path / "runs" / "fedasync"
    write_run(run, rows, {"status": "completed", "strategy": "vmap"})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra").mkdir()
    saved = ["experiment=outage_fedasync", "logger=disabled", "sim.progress=false", "seed=3"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(saved))
    argv = ["x", "--plot-only", "--algs", "fedasync", "--runs", str(tmp_path / "runs")]
    monkeypatch.setattr(sys, "argv", argv + ["--out", str(tmp_path / "out"), "task.model=nope"])
    fo.main()  # the bogus override is not composed in --plot-only
    res = json.loads((tmp_path / "out" / "outage.json").read_text())
    assert res["outage_s"] == [40.0, 80.0]
    fa = res["fedasync"]
    assert fa["server_frozen_during_outage"] is True and fa["time_to_0.80_s"] == 100.0
    assert res["runs"]["fedasync"]["overrides"] == ["seed=3"]
    assert (tmp_path / "out" / "outage.png").is_file()
