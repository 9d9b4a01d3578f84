"""Checkpoint/resume: a run killed with SIGKILL after a checkpoint and resumed ends with the same
metrics and final state as the run that went through; half-written checkpoints are ignored."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dl.io.checkpoint import Checkpointer

ENV = {**os.environ, "WANDB_MODE": "disabled"}
BASE = [
    "logger=disabled",
    "sim.progress=false",
    "sim.num_nodes=30",
    "sim.duration_s=900",
    "sim.eval_every_s=150",
    "ckpt.every_s=300",
    "trace=bernoulli",
]


def run(args, wait=True):
    cmd = [sys.executable, "-m", "dl.run", *args]
    if wait:
        return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def rows(path: Path) -> list[dict]:
    out = [json.loads(x) for x in path.read_text().splitlines()]
    for r in out:
        r.pop("wall_time_s")
    return out


def complete_steps(ckpt_dir: Path) -> list[int]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())


@pytest.mark.parametrize("alg", ["gossip", "fedbuff"])
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, alg):
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = run([*BASE, f"algorithm={alg}", f"hydra.run.dir={full}"])
    assert r.returncode == 0, r.stderr[-2000:]
    p = run([*BASE, f"algorithm={alg}", f"hydra.run.dir={cut}"], wait=False)
    deadline = time.time() + 300
    while not complete_steps(cut / "checkpoints") and time.time() < deadline:
        if p.poll() is not None:
            break
        time.sleep(0.05)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait()
    steps = complete_steps(cut / "checkpoints")
    assert steps, "no checkpoint was completed before the kill"
    r = run([*BASE, f"algorithm={alg}", f"resume={cut}", f"hydra.run.dir={tmp_path / 'x'}"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert rows(cut / "metrics.jsonl") == rows(full / "metrics.jsonl")
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    for k in ("wall_time_s", "run_dir"):
        a.pop(k), b.pop(k)
    assert a == b


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    import jax.numpy as jnp

    ck = Checkpointer(tmp_path / "ck", every_s=10.0)
    ck.save(3, {"w": jnp.ones(3)}, {"clock": 10.0, "rows": 3}, 10.0)
    # a crash in the middle of writing step 7 leaves Orbax's temporary directory behind
    tmp = tmp_path / "ck" / "7.orbax-checkpoint-tmp-1234567"
    tmp.mkdir()
    (tmp / "partial").write_text("garbage")
    ck.close()
    ck = Checkpointer(tmp_path / "ck", every_s=10.0)
    assert ck.latest() == 3
    state, host = ck.restore({"w": jnp.zeros(3)})
    assert host["rows"] == 3 and float(state["w"].sum()) == 3.0
    ck.close()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "old").mkdir()
    r = run(["logger=disabled", f"resume={tmp_path / 'old'}", f"hydra.run.dir={tmp_path / 'x'}"])
    assert r.returncode == 2 and "no complete checkpoint" in r.stderr


def test_stop_signals_status():
    import signal

    from dl.io.checkpoint import StopSignals

    s = StopSignals()
    assert s.status() == {"status": "completed"}
    s.signum = signal.SIGINT  # Ctrl-C: 128 + 2
    assert s.status() == {"status": "interrupted", "signal": "SIGINT", "exit_code": 130}
