"""Smoke test of the training benchmark (scripts/bench_train.py) and the matmul ceiling.

Tiny sizes (N = 4 nodes, 1 local step, 1 repeat, a 128 x 128 matmul): checks that every row has
the expected keys and positive numbers, that `auto` is reported, that the vmap-over-conv CPU trap
is skipped above N = 100 without compiling anything, and that the JSON/markdown writers work.
"""

import json
import math
from pathlib import Path

import jax
import pytest
from scripts_loader import load_script

from dl.bench import matmul_gflops, peak_matmul_gflops

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_train")


def tiny_cfg(bench):
    return bench.BenchConfig(
        examples=8,
        batch_size=4,
        local_steps=1,
        chunk=2,
        repeats=1,
        max_seconds=0.5,
        min_seconds=0.0,
        pilot_nodes=4,
    )


def test_matmul_gflops_positive():
    r = matmul_gflops(n=128, repeats=2)
    assert r.best_gflops > 0 and r.median_gflops > 0 and r.best_gflops >= r.median_gflops
    peak = peak_matmul_gflops((64, 128), repeats=1)
    assert peak["gflops"] == max(d["best_gflops"] for d in peak["by_size"]) > 0


def test_logreg_rows_have_expected_keys_and_positive_numbers(bench, tmp_path):
    result = bench.run(["logreg"], [4], tiny_cfg(bench), matmul_sizes=(128,), matmul_repeats=1)
    rows = result["rows"]
    assert [r["strategy"] for r in rows] == ["loop", "vmap", "map", "chunked", "auto"]
    assert rows[-1]["auto_pick"] == bench.resolve_strategy("auto", "logreg")
    for r in rows:
        assert set(bench.ROW_KEYS) <= set(r), set(bench.ROW_KEYS) - set(r)
        assert r["model"] == "logreg" and r["nodes"] == 4 and r["timed_nodes"] == 4
        assert not r["capped"]
        keys = ("median_s", "best_s", "node_steps_per_s", "samples_per_s", "gflops", "frac_matmul")
        for key in (*keys, "frac_matmul_best", "speedup_vs_loop_best"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["strategy"], key, r[key])
        assert r["compile_s"] > 0 and r["speedup_vs_loop"] > 0
        assert r["samples_per_s"] == pytest.approx(4 * r["node_steps_per_s"])
    assert rows[0]["speedup_vs_loop"] == rows[0]["speedup_vs_loop_best"] == 1.0
    assert all(r["frac_matmul_best"] >= r["frac_matmul"] * (1 - 1e-9) for r in rows)
    info = result["machine"]
    assert info["backend"] == jax.default_backend() and info["cpu_count"] >= 1
    assert result["matmul"]["gflops"] > 0
    # JSON round trip and the README table
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(result))
    assert json.loads(path.read_text())["rows"][0]["model"] == "logreg"
    table = bench.markdown_table(result)
    assert table.count("\n| logreg | 4 |") == 5 and "auto (=" in table


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the trap skip is CPU-only")
def test_vmap_over_conv_is_skipped_above_100_nodes_on_cpu(bench):
    rows = bench.bench_group(
        "cnn_femnist", 200, tiny_cfg(bench), 1.0, strategies=("vmap", "chunked"), log=lambda s: 0
    )
    assert [r["strategy"] for r in rows] == ["vmap", "chunked"]
    for r in rows:
        assert r["skipped"].startswith("skipped (vmap-over-conv CPU trap")


def test_acceptance_checks_are_judged_on_auto_rows(bench):
    rows = [
        {"model": "logreg", "nodes": 1000, "strategy": "auto", "speedup_vs_loop": 6.0},  # no _best
        {
            "model": "cnn_small",
            "nodes": 100,
            "strategy": "auto",
            "speedup_vs_loop": 0.9,
            "frac_matmul": 0.2,
        },
    ]
    checks = {c["check"]: c["pass"] for c in bench.acceptance(rows)}
    assert checks == {
        "logreg N=1000: vectorized / loop": True,
        "cnn_small N=100: vectorized / loop": False,
        "cnn_small N=100: fraction of matmul": True,
    }
