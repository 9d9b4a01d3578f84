"""Smoke tests of the gossip benchmarks (scripts/bench_gossip.py, scripts/bench_gossip_scale.py),
which build their world through `dl.build.build` and `make_runner` (conf/task/synthetic_logreg):
tiny sizes, each script in its own process as a user runs it; the JSON fields, the message
counts an always-on gossip world fixes exactly, and no recompilation while timing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / name), *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def test_bench_gossip_scale_small(tmp_path):
    out = tmp_path / "scale.json"
    run_script("bench_gossip_scale.py", "--nodes", "100", "--periods", "2", "--out", str(out))
    r = json.loads(out.read_text())
    assert r["nodes"] == 100 and len(r["period_wall_s"]) == 2
    assert r["chunk_compiles"] == 1  # the timed periods reuse the first period's program
    # always online, every node sends once per 10-s period (first send at a phase in [0, 10 s)):
    # 3 periods (the first + 2 timed) = exactly 3 x 100 messages; a training needs a message
    assert r["messages"] == 300.0
    assert 0 < r["trainings"] <= r["messages"]
    assert r["t_comp_s"] == pytest.approx(2.0, rel=1e-6)
    assert r["node_model_bytes"] == 100 * (64 * 10 + 10) * 4  # [N] logreg kernel + bias, f32


@pytest.mark.slow
def test_bench_gossip_small(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--nodes", "100", "--caps", "20", "--repeats", "2", "--warm-periods", "1"]
    run_script("bench_gossip.py", *args, "--out", str(out))
    r = json.loads(out.read_text())
    assert [row["case"] for row in r["rows"]] == ["cap20", "cap20_system_only"]
    for row in r["rows"]:
        assert row["chunk_compiles"] == 1 and len(row["period_times_s"]) == 2
        # each timed period: every one of the 100 always-online nodes sends exactly once
        assert row["per_period"]["messages_sent"] == 100.0
        assert row["per_period"]["messages_lost"] == 0.0
        # a training starts on a receive and lasts 0.6 s: those ending in a 10-s period started
        # on messages sent in the 10.6 s before its end, at most 2 per node
        assert 0 < row["per_period"]["trainings"] <= 200
    assert r["train_step"]["median_s"] > 0 and r["dataset"] == "synthetic"
