"""Fault injection (issue 14): bad config values and keys, reused run folders, resume with a
changed config, SIGINT, corrupt checkpoints, failed runs. Every fault ends in one line
`error: ...` (exit 2) or the correct behaviour; nothing is half-written or lost."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dl.errors import ConfigError
from dl.io.checkpoint import Checkpointer
from dl.resume_config import parse_overrides, precheck

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


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["+sim.num_nodse=10"], "sim.num_nodse=10: unknown key"),
        (["sim.num_nodse=10"], "sim.num_nodse=10: unknown key"),
        (["++algorithm.lamda=1"], "algorithm.lamda=1: unknown key"),
        (["sim.num_nodes=abc"], "sim.num_nodes=abc: not an integer"),
        (["sim.num_nodes=10.7"], "sim.num_nodes=10.7: not an integer"),
        (["sim.num_nodes=0"], "sim.num_nodes=0: out of range"),
        (["seed=abc"], "seed=abc: not an integer"),
        (["task.train.lr=fast"], "task.train.lr=fast: not a number"),
        (["task.train.lr=nan"], "task.train.lr=nan: not finite"),
        (["task.train.lr=0"], "task.train.lr=0: out of range"),
        (["sim.max_rounds=0"], "sim.max_rounds=0: out of range"),
        (["sim.eval_nodes=0"], "sim.eval_nodes=0: out of range"),
        (["algorithm=dwa", "algorithm.lam_max=5"], "algorithm.lam_max=5: out of range"),
        (["server=outage_mid", "server.outages=[10,20]"], "server.outages=[10,20]"),
        (["server=outage_mid", "server.outages=[[20,10]]"], "needs 0 <= start < end"),
        (["server=outage_mid", "server.outages=[[1,2,3]]"], "not a [start_s, end_s] pair"),
        (["server=outage_mid", "server.outages=[[a,2]]"], "holds a non-number"),
        (["server=outage_mid", "server.outages=5"], "server.outages=5: not a list"),
        (["logger=wandb", "logger.mode=bogus"], "logger.mode=bogus: not one of"),
        (["sim.train=maybe"], "sim.train=maybe: not one of"),
        (["task.train.lr=[1"], "task.train.lr=[1: cannot parse"),
    ],
)
def test_bad_config_is_one_line_naming_key_value_and_range(overrides, needle):
    with pytest.raises(ConfigError) as e:
        precheck(parse_overrides(overrides))
    msg = str(e.value)
    assert "\n" not in msg and needle in msg, msg
    if "unknown key" in msg:
        assert "allowed under" in msg
    elif "parse" not in msg:
        assert "(allowed: " in msg


def test_good_configs_pass_the_schema():
    # the range ends themselves are allowed: lam_max = 1, p_online = 0, max_rounds = 1
    precheck(parse_overrides(["algorithm=dwa", "algorithm.lam_max=1", "sim.max_rounds=1"]))
    precheck(parse_overrides(["trace=bernoulli", "trace.availability_options.p_online=0"]))
    precheck(parse_overrides(["+algorithm.inflight_cap=4", "+task.model_options.hidden=8"]))
    precheck(parse_overrides(["seed=0,1", "task.train.lr=0.1,0.2"]), multirun=True)
    with pytest.raises(ConfigError, match="task.train.lr=-1: out of range"):
        precheck(parse_overrides(["seed=0,1", "task.train.lr=0.1,-1"]), multirun=True)


def test_cli_bad_config_stops_before_any_folder_is_made(tmp_path):
    for arg, needle in (("+sim.num_nodse=10", "unknown key"), ("sim.num_nodes=abc", "integer")):
        one_line(cli(arg, cwd=tmp_path), needle)
    assert list(tmp_path.iterdir()) == []


def test_a_used_run_folder_is_refused(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"virtual_time_s": 0.0}\n')
    one_line(cli(*TINY, f"hydra.run.dir={tmp_path}"), "already holds a run")
    assert (tmp_path / "metrics.jsonl").read_text() == '{"virtual_time_s": 0.0}\n'


def test_runs_started_together_get_their_own_folders(tmp_path):
    args = ["logger=disabled", "sim.progress=false", "sim.num_nodes=6", "sim.train=false"]
    args += ["algorithm=fedbuff", "sim.duration_s=120", "sim.eval_every_s=120"]
    ps = [cli(*args, f"seed={s}", cwd=tmp_path, wait=False) for s in (0, 1)]
    for p in ps:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    dirs = sorted(p.parent for p in tmp_path.glob("outputs/*/*/config.yaml"))
    assert len(dirs) == 2
    seeds = sorted(json.loads(json.dumps(_yaml(d / "config.yaml")))["seed"] for d in dirs)
    assert seeds == [0, 1]


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_failed_run_records_status_and_error(tmp_path):
    run = tmp_path / "run"
    r = cli(*TINY, "task.train.lr=1e38", "sim.duration_s=240", f"hydra.run.dir={run}")
    line = one_line(r, "diverged")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line[len("error: ") :]
    assert line in (run / "run.log").read_text()


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


# -- data files ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # standardizing the inf column
def test_non_finite_feature_is_a_data_error_not_divergence(tmp_path):
    import numpy as np

    from dl.data.datasets import load_dataset
    from dl.errors import DataError

    rng = np.random.default_rng(0)
    x = rng.random((60, 57))
    x[5, 3] = np.inf
    rows = [",".join(f"{v:g}" for v in r) + f",{i % 2}" for i, r in enumerate(x)]
    (tmp_path / "spambase").mkdir()
    (tmp_path / "spambase" / "spambase.data").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset("spambase", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "non-finite" in msg and "spambase" in msg and str(tmp_path) in msg


def _stunner_npz(path: Path) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        user_index=np.zeros(2, np.int32),
        first_online=np.array([True, False]),
        start_ms=np.array([0, 1000], np.int64),
        tz_hours=np.zeros(2, np.int8),
        offsets=np.array([0, 2, 3], np.int64),
        durations_ms=np.array([500, 700, 900], np.int64),
    )


@pytest.mark.parametrize(
    "fault,needle",
    [
        ("random", "not an npz (zip) archive"),
        ("flip", "damaged archive"),
        ("truncate", "corrupt STUNner npz"),
        ("pickle", "holds pickled objects"),
        ("missing", "lacks array(s) durations_ms"),
        ("malformed", "malformed STUNner trace"),
    ],
)
def test_bad_stunner_npz_is_one_line_naming_file_and_defect(tmp_path, fault, needle):
    import numpy as np

    from dl.errors import DataError
    from dl.traces.stunner import FOLDER, load_stunner

    path = tmp_path / FOLDER / "stunner_sessions_thr100.npz"
    _stunner_npz(path)
    data = bytearray(path.read_bytes())
    if fault == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif fault == "flip":
        i = data.index(b"durations_ms.npy") + 80  # inside that member's data
        data[i : i + 16] = bytes(b ^ 0xFF for b in data[i : i + 16])
        path.write_bytes(bytes(data))
    elif fault == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif fault in ("pickle", "missing", "malformed"):
        with np.load(path) as z:
            arrays = dict(z)
        if fault == "pickle":
            arrays["durations_ms"] = np.array([{"a": 1}], dtype=object)
        elif fault == "missing":
            del arrays["durations_ms"]
        else:
            arrays["durations_ms"] = np.array([500, -7, 900])
        np.savez(path, **arrays)
    with pytest.raises(DataError) as e:
        load_stunner(tmp_path, 100)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg and str(path) in msg, msg


def test_fedscale_converter_refuses_nan_and_keeps_the_valid_output(tmp_path):
    import pickle

    sys.path.insert(0, str(REPO / "scripts"))
    import convert_fedscale

    good = {1: {"computation": 10.0, "communication": 500.0}}
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(good))
    assert (
        convert_fedscale.main(["--capacity", str(tmp_path / "good.pkl"), "--out", str(tmp_path)])
        == 0
    )
    before = (tmp_path / "fedscale_capacity.npz").read_bytes()
    for bad_value in (float("nan"), -3.0):
        bad = {
            1: {"computation": 10.0, "communication": 500.0},
            2: {"computation": bad_value, "communication": 1.0},
        }
        (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad))
        assert (
            convert_fedscale.main(["--capacity", str(tmp_path / "bad.pkl"), "--out", str(tmp_path)])
            == 2
        )
        assert (tmp_path / "fedscale_capacity.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.pkl",
        "fedscale_capacity.npz",
        "good.pkl",
    ]


def test_plot_run_faults_are_one_line(tmp_path):
    m = tmp_path / "metrics.jsonl"
    m.write_text(
        '{"virtual_time_s": 0.0, "test_accuracy": 0.1}\n'
        '{"virtual_time_s": 120.0, "test_accuracy": 0.5}\n'
    )
    torn = tmp_path / "torn.jsonl"
    torn.write_text(m.read_text() + '{"virtual_time_s": 240.0, "test_acc')
    plot = [sys.executable, str(REPO / "scripts" / "plot_run.py")]
    cases = [
        ([str(m), "--x", "bogus", "--out", str(tmp_path / "a.png")], "--x bogus"),
        ([str(torn), "--out", str(tmp_path / "b.png")], "line 3 is not a JSON object"),
        ([str(m), "--out", "/proc/no/such/a.png"], "cannot write --out"),
    ]
    for args, needle in cases:
        r = subprocess.run([*plot, *args], capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and needle in lines[0], r.stderr[-1500:]


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
