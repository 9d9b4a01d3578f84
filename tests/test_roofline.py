"""scripts/roofline_cnn.py: the roofline arithmetic, by hand."""

import pytest
from scripts_loader import load_script

rl = load_script("roofline_cnn")


def test_compute_bound_step():
    # 2 GFLOP at 100 GFLOP/s = 20 ms; 1e6 params x 4 B x 4 passes = 16 MB at 1 GB/s = 16 ms:
    # compute-bound, so with overlap the ceiling is reachable (1.0), without 20 / 36
    r = rl.roofline(2e9, 1_000_000, 100.0, 1.0)
    assert r["step_min_bytes"] == 16_000_000
    assert r["bound_s"] == pytest.approx({"compute": 0.02, "memory": 0.016})
    assert r["best_frac_of_ceiling"] == 1.0
    assert r["best_frac_no_overlap"] == pytest.approx(20 / 36)


def test_memory_bound_step():
    # 1 GFLOP at 100 GFLOP/s = 10 ms; 16 MB at 0.4 GB/s = 40 ms: at most 10/40 = 25% of the
    # ceiling, 10/50 = 20% without overlap
    r = rl.roofline(1e9, 1_000_000, 100.0, 0.4)
    assert r["best_frac_of_ceiling"] == pytest.approx(0.25)
    assert r["best_frac_no_overlap"] == pytest.approx(0.2)
