"""Helpers of the fault-injection tests (tests/test_faults_*.py): run `dl.run` as a subprocess,
check that a fault ends in exactly one `error: ...` line with exit 2, read metrics rows."""

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "WANDB_MODE": "disabled"}
REPO = Path(__file__).resolve().parent.parent
TINY = [
    "logger=disabled",
    "sim.progress=false",
    "sim.num_nodes=6",
    "algorithm=gossip",
    "algorithm.degree=3",
    "sim.eval_every_s=120",
    "ckpt.every_s=240",
]


def cli(*args, cwd=None, wait=True):
    cmd = [sys.executable, "-m", "dl.run", *args]
    env = {**ENV, "PYTHONPATH": str(REPO)}
    if not wait:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


def one_line(r, needle: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert needle in lines[0], lines[0]
    return lines[0]


def rows(path: Path) -> list[dict]:
    out = [json.loads(x) for x in path.read_text().splitlines()]
    for r in out:
        r.pop("wall_time_s")
    return out


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
