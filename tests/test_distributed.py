"""`dist.enabled=true`: two local CPU processes on a localhost coordinator run one simulation.

Each process simulates every node on its own device (the node axis is not split across
processes, `dl.sharding`), so with the same config and seed both compute exactly what a single
process computes; only process 0 writes metrics, summary, config and checkpoints.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "logger=disabled",
    "sim.progress=false",
    "sim.num_nodes=6",
    "sim.duration_s=240",
    "sim.eval_every_s=120",
    "algorithm.clients_per_round=3",
    "ckpt.every_s=120",
    "seed=3",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "XLA_FLAGS": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "dl.run", *TINY, f"hydra.run.dir={run_dir}", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(p: subprocess.Popen) -> str:
    try:
        out, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    assert p.returncode == 0, out[-3000:]
    return out


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "wall_time_s"} for x in lines]


def test_two_processes_write_once_and_match_one_process(tmp_path):
    dist = [
        "dist.enabled=true",
        f"dist.coordinator_address=127.0.0.1:{free_port()}",
        "dist.num_processes=2",
    ]
    p0 = launch(tmp_path / "p0", *dist, "dist.process_id=0")
    p1 = launch(tmp_path / "p1", *dist, "dist.process_id=1")
    finish(p0), finish(p1)
    finish(launch(tmp_path / "single"))

    written = sorted(p.parent.name for p in tmp_path.glob("*/metrics.jsonl"))
    assert written == ["p0", "single"]  # process 1 writes no metrics ...
    for name in ("summary.json", "config.yaml", "checkpoints"):
        assert (tmp_path / "p0" / name).exists()
        assert not (tmp_path / "p1" / name).exists()  # ... nor anything else of ours
    assert len(rows(tmp_path / "p0")) == 3  # t = 0, 120, 240 s
    assert rows(tmp_path / "p0") == rows(tmp_path / "single")
