"""`sim.compile_cache` (issues 16, 17: compile time): a second run with the same shapes loads
every compiled program from JAX's persistent cache (no new entry) and gives the same rows.
Subprocesses: the cache is a process-wide JAX setting."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["sim.num_nodes=10", "sim.duration_s=60", "sim.eval_every_s=30", "logger=disabled"]
ARGS += ["sim.progress=false"]


def run(tmp: Path, name: str, cache: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "dl.run", *ARGS, f"sim.compile_cache={cache}"]
    cmd += [f"hydra.run.dir={tmp / name}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    rows = [json.loads(x) for x in (tmp / name / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def test_second_run_hits_the_cache_and_changes_nothing(tmp_path):
    cache = tmp_path / "cache"
    first = run(tmp_path, "a", cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert entries  # the first run wrote its compiled programs
    second = run(tmp_path, "b", cache)
    assert sorted(p.name for p in cache.iterdir()) == entries  # every program was a hit
    assert second == first
