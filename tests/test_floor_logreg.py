"""scripts/floor_logreg.py: the floor arithmetic by hand, the peer lookup, a tiny measured run."""

import json

import pytest
from scripts_loader import load_script

fl = load_script("floor_logreg")


def test_floor_is_steps_times_the_step_cpu_time_over_the_cores():
    # CPU per step 1 + 2 + 0.5 + 1.5 + 0.25 = 5.25 ms; 10 steps = 52.5 ms of CPU; on 2 cores
    # kept busy 26.25 ms of wall time; the costlier weight-gradient formulation (9 ms) is
    # reported but not counted
    per_op = {"gather": 1e-3, "forward": 2e-3, "xent_grad": 0.5e-3, "weight_grad": 1.5e-3}
    per_op |= {"update": 0.25e-3, "weight_grad_batched_matmul": 9e-3}
    r = fl.floor(per_op, 10, 2)
    assert r["step_cpu_s"] == pytest.approx(5.25e-3)
    assert r["floor_s"] == pytest.approx(26.25e-3)
    assert fl.floor(per_op, 10, 1)["floor_s"] == pytest.approx(52.5e-3)
    # a peer round of 0.35 s over a 26.25 ms floor: at most 13.3x
    assert fl.best_ratio(0.35, r["floor_s"]) == pytest.approx(0.35 / 0.02625)
    assert fl.best_ratio(None, r["floor_s"]) is None


def test_peer_round_is_the_median_over_repeats(tmp_path):
    runs = [{"median_round_s": s} for s in (0.3, 0.5, 0.4)]
    groups = [
        {"model": "logreg", "nodes": 100, "runs": {"fedjax": [{"median_round_s": 9.0}]}},
        {"model": "logreg", "nodes": 1000, "runs": {"fedjax": runs}},
    ]
    p = tmp_path / "peers.json"
    p.write_text(json.dumps({"groups": groups}))
    assert fl.peer_round_s(p, "fedjax", 1000) == pytest.approx(0.4)
    assert fl.peer_round_s(p, "gossipy", 1000) is None
    assert fl.peer_round_s(tmp_path / "missing.json", "fedjax", 1000) is None


def test_tiny_run_writes_json_and_table(tmp_path):
    out = tmp_path / "floor.json"
    r = fl.main(["--nodes", "8", "--out", str(out), "--peers", str(tmp_path / "none.json")])
    saved = json.loads(out.read_text())
    assert saved["nodes"] == 8 and saved["best_ratio"] is None
    assert set(fl.STEP_OPS) <= set(saved["per_op_s"]) and set(fl.STEP_OPS) <= set(
        saved["per_op_cpu_s"]
    )
    cpu = sum(saved["per_op_cpu_s"][k] for k in fl.STEP_OPS)
    assert saved["floor_s"] == pytest.approx(10 * cpu / saved["cores"])
    assert r["engine_train_s"] > 0
    assert "| 8 |" in fl.table(r)
