"""Fault injection (issue 14), checkpoints and interrupts: corrupt checkpoints fall back to an
older step or fail in one line; SIGINT then resume equals the uninterrupted run; SIGTERM without
checkpointing flushes every row to W&B. Nothing is half-written or lost."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults_common import ENV, TINY, _yaml, cli, one_line, rows

from dl.errors import ConfigError
from dl.io.checkpoint import Checkpointer

# -- checkpoints, in process ---------------------------------------------------------------


def _two_steps(tmp_path):
    import jax.numpy as jnp

    ck = Checkpointer(tmp_path / "ck", every_s=10.0)
    for step, w in ((3, 1.0), (7, 2.0)):
        host = {"clock": 10.0 * step, "rows": step, "target": 0.0, "totals": {}}
        ck.save(step, {"w": jnp.full(3, w)}, host, 10.0 * step)
    ck.close()
    return tmp_path / "ck", {"w": jnp.zeros(3)}


def _largest_file(step_dir: Path) -> Path:
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.name != "dl_checksums.json"]
    return max(files, key=lambda p: p.stat().st_size)


def test_flipped_bytes_fall_back_to_the_previous_checkpoint(tmp_path, capsys):
    d, like = _two_steps(tmp_path)
    f = _largest_file(d / "7")
    data = bytearray(f.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # 64 bytes in the middle
    f.write_bytes(bytes(data))
    ck = Checkpointer(d, every_s=10.0)
    state, host = ck.restore(like)
    ck.close()
    assert host["rows"] == 3 and float(state["w"].sum()) == 3.0  # step 3's ones
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step 7" in err[0] and "checksum" in err[0]
    assert not (d / "7").exists() and (tmp_path / "ck-corrupt" / "7").is_dir()


@pytest.mark.parametrize("fault", ["zero", "truncate", "delete"])
def test_no_valid_checkpoint_left_is_one_line(tmp_path, fault):
    d, like = _two_steps(tmp_path)
    for step in ("3", "7"):
        f = _largest_file(d / step)
        if fault == "zero":
            f.write_bytes(bytes(f.stat().st_size))
        elif fault == "truncate":
            f.write_bytes(f.read_bytes()[:5])
        else:
            f.unlink()
    ck = Checkpointer(d, every_s=10.0)
    with pytest.raises(ConfigError) as e:
        ck.restore(like)
    ck.close()
    msg = str(e.value)
    assert "\n" not in msg and "no valid checkpoint" in msg and "step 7" in msg and "step 3" in msg
    assert (d / "7").is_dir() and (d / "3").is_dir()  # nothing moved when nothing restored


def test_orbax_errors_are_one_line_without_checksums(tmp_path):
    """A checkpoint without our checksum file (older runs) still fails in one line."""
    d, like = _two_steps(tmp_path)
    for step in ("3", "7"):
        (d / step / "dl_checksums.json").unlink()
        for f in (d / step / "state").rglob("*"):  # Orbax tolerates a broken step metadata file
            if f.is_file():
                f.write_bytes(b"")
    ck = Checkpointer(d, every_s=10.0)
    with pytest.raises(ConfigError) as e:
        ck.restore(like)
    ck.close()
    assert "\n" not in str(e.value) and "no valid checkpoint" in str(e.value)


# -- interrupt and resume, end to end ------------------------------------------------------


def wandb_history(run_dir: Path, newest: bool = True) -> list[tuple[int, float]]:
    """(_step, virtual_time_s) of every history record of the newest (else the oldest) offline
    W&B run of `run_dir`."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    data = next(runs[-1 if newest else 0].glob("*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):  # LevelDB log: 32 KiB blocks of [crc u32, len u16, type u8]
        left = 32768 - pos % 32768
        _, n, typ = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or typ == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + n], pos + 7 + n
        buf = chunk if typ in (1, 2) else buf + chunk
        if typ in (1, 4):
            out.append(buf)
    hist = []
    for c in out:
        r = pb.Record()
        r.ParseFromString(c)
        if r.WhichOneof("record_type") == "history":
            d = {i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
            hist.append((r.history.step.num, json.loads(d["virtual_time_s"])))
    return hist


@pytest.mark.slow
def test_sigint_then_resume_equals_uninterrupted_with_complete_wandb(tmp_path):
    """SIGINT: checkpoint, one line, exit 130; `resume=X` alone continues from X/config.yaml;
    metrics.jsonl equals the uninterrupted run's and the W&B run holds every row once."""
    env_wandb = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    base = [*TINY[1:], "logger=wandb", "sim.duration_s=2400"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = subprocess.run(
        [sys.executable, "-m", "dl.run", *base, f"hydra.run.dir={full}"],
        capture_output=True,
        text=True,
        env={**ENV, **env_wandb},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    p = subprocess.Popen(
        [sys.executable, "-m", "dl.run", *base, "sim.duration_s=1e6", f"hydra.run.dir={cut}"],
        env={**ENV, **env_wandb},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        m = cut / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("SIGINT: stopped at virtual time"), err
    assert json.loads((cut / "summary.json").read_text())["status"] == "interrupted"
    stopped = rows(cut / "metrics.jsonl")[-1]["virtual_time_s"]
    assert stopped < 2400, "the run passed 2400 s before SIGINT arrived"
    # every checkpoint corrupt: one line, metrics.jsonl untouched, the failure recorded
    bad = tmp_path / "bad"
    shutil.copytree(cut, bad)
    for step in (bad / "checkpoints").iterdir():
        _largest_file(step).write_bytes(b"\0" * 8)
    before = (bad / "metrics.jsonl").read_text()
    one_line(cli(f"resume={bad}"), "no valid checkpoint")
    assert (bad / "metrics.jsonl").read_text() == before
    assert json.loads((bad / "summary.json").read_text())["status"] == "failed"
    # the run's own config, only the duration changed (allowed); a changed lr is refused
    one_line(cli("task.train.lr=0.01", f"resume={cut}"), "task.train.lr=0.01 differs")
    r = subprocess.run(
        [sys.executable, "-m", "dl.run", f"resume={cut}", "sim.duration_s=2400"],
        capture_output=True,
        text=True,
        env={**ENV, **env_wandb},
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (tmp_path / "outputs").exists()  # no stray Hydra folder
    assert rows(cut / "metrics.jsonl") == rows(full / "metrics.jsonl")
    times = [x["virtual_time_s"] for x in rows(full / "metrics.jsonl")]
    assert wandb_history(full) == list(enumerate(times))
    assert wandb_history(cut) == list(enumerate(times))  # every row once, _step continuing
    interrupted = wandb_history(cut, newest=False)  # the SIGINT'd process flushed its rows
    assert interrupted == list(enumerate(times))[: len(interrupted)] and len(interrupted) >= 3
    assert _yaml(cut / "config.yaml")["sim"]["duration_s"] == 2400


def test_sigterm_without_checkpointing_flushes_every_row(tmp_path):
    """No ckpt.every_s: SIGTERM still stops at the next evaluation with one line, exit 143,
    summary status interrupted, and the W&B run holds every row of metrics.jsonl."""
    run = tmp_path / "run"
    args = [*TINY[1:-1], "logger=wandb", "sim.duration_s=1e6", f"hydra.run.dir={run}"]
    p = subprocess.Popen(
        [sys.executable, "-m", "dl.run", *args],
        env={**ENV, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    m = run / "metrics.jsonl"
    while time.time() < deadline and p.poll() is None:
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SIGTERM: stopped" in lines[0] and "no checkpoint" in lines[0]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    times = [r["virtual_time_s"] for r in rows(m)]
    assert wandb_history(run) == list(enumerate(times))
