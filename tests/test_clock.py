"""The host loop reads virtual time exactly as the engines' stop test computes it (float32)."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from dl.algorithms.base import quantum_clock

REPO = Path(__file__).resolve().parent.parent
Q = 7.543859649  # the quantum fig_dais hit: 57 quanta are 430.0 in float32, not in float64


def test_quantum_clock_matches_the_float32_stop_test():
    assert float(np.float64(57) * Q) < 430.0  # float64 falls short of the evaluation time
    assert quantum_clock(57, Q) == 430.0 == float(np.float32(57) * np.float32(Q))
    assert quantum_clock(3, 5.0) == 15.0


def test_a_run_whose_quantum_lands_on_an_eval_time_in_float32_ends(tmp_path):
    # gossip, eval every 430 s: the engine stops at quantum 57 (430.0 in float32); with a
    # float64 host clock (429.99999999) the loop asked for more chunks forever
    cmd = [sys.executable, "-m", "dl.run", "algorithm=gossip", f"algorithm.quantum_s={Q}"]
    cmd += [f"algorithm.period_s={2 * Q}", "sim.num_nodes=6", "sim.duration_s=860"]
    cmd += ["sim.eval_every_s=430", "sim.progress=false", "logger=disabled"]
    cmd += [f"hydra.run.dir={tmp_path / 'run'}"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-1500:]
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3  # 0, 430, 860 s: no duplicate rows
