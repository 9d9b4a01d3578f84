"""End to end: the CLI runs the embedded default and writes rising accuracy to metrics.jsonl;
bad inputs stop with one line naming the cause."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dl.errors import DLError
from dl.run import CONF_DIR
from dl.simulate import simulate

ENV = {**os.environ, "WANDB_MODE": "disabled"}


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "dl.run", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        cwd=cwd,
    )


def test_cli_default_run_writes_rising_accuracy(tmp_path):
    out = tmp_path / "run"
    r = cli(
        "logger=disabled",
        "sim.duration_s=600",
        "sim.eval_every_s=120",
        "sim.progress=false",
        f"hydra.run.dir={out}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for key in ("virtual_time_s", "round", "test_accuracy", "test_loss", "bytes_up", "bytes_down"):
        assert key in rows[0]
    assert rows[0]["virtual_time_s"] == 0.0 and rows[0]["test_accuracy"] < 0.3
    assert rows[-1]["test_accuracy"] > 0.85
    times = [r["virtual_time_s"] for r in rows]
    assert times == sorted(times) and times[-1] >= 600
    assert rows[-1]["bytes_up"] > 0 and rows[-1]["bytes_down"] >= rows[-1]["bytes_up"]
    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg.seed == 0 and cfg.task.dataset == "digits"
    assert json.loads((out / "summary.json").read_text())["round"] == rows[-1]["round"]


@pytest.mark.parametrize(
    "arg,needle",
    [("task=nope", "unknown task 'nope'"), ("algorithm=fedsgd", "unknown algorithm 'fedsgd'")],
)
def test_cli_unknown_group_option_is_one_line(arg, needle):
    r = cli(arg)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "choose from" in lines[0]


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["logger=disabled", "sim.progress=false", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def expect_error(tmp_path, *overrides) -> str:
    with pytest.raises(DLError) as e:
        simulate(compose_cfg(*overrides), tmp_path / "out")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_data_root(tmp_path):
    msg = expect_error(tmp_path, "task=fmnist_cnn", f"data.root={tmp_path / 'nowhere'}")
    assert "nowhere" in msg and "does not exist" in msg


def test_corrupt_idx_file(tmp_path):
    root = tmp_path / "root"
    (root / "fashion_mnist").mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        with gzip.open(root / "fashion_mnist" / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # header of a 3-D file, truncated
    msg = expect_error(tmp_path, "task=fmnist_cnn", f"data.root={root}")
    assert "idx" in msg.lower() and "fashion_mnist" in msg


def test_model_that_does_not_fit_the_dataset(tmp_path):
    msg = expect_error(tmp_path, "task.model=cnn_small")
    assert "cnn_small" in msg and "digits" in msg


def test_bad_values(tmp_path):
    assert "clients_per_round" in expect_error(tmp_path, "algorithm.clients_per_round=1000")
    assert "optimizer" in expect_error(tmp_path, "task.train.optimizer=lbfgs")
    assert "node_map" in expect_error(tmp_path, "sim.node_map=pmap")
    chunk0 = expect_error(tmp_path, "sim.node_map=chunked", "sim.node_map_chunk=0")
    assert "node_map_chunk" in chunk0
    pegasos_async = expect_error(tmp_path, "algorithm=fedasync", "task.train.lr_schedule=pegasos")
    assert "lr_schedule=pegasos" in pegasos_async and "fedasync" in pegasos_async


def test_node_map_chunk_reaches_the_strategy(tmp_path):
    """`sim.node_map_chunk` sets the chunk of `node_map=chunked` (tests/test_mapping.py checks
    that the chunk is what lax.map batches by)."""
    tiny = ("sim.num_nodes=6", "algorithm.clients_per_round=3", "sim.duration_s=120")
    for chunk in (3, 5):
        over = ("sim.node_map=chunked", f"sim.node_map_chunk={chunk}", "sim.eval_every_s=120")
        summary = simulate(compose_cfg(*tiny, *over), tmp_path / str(chunk))
        assert summary["strategy"] == f"chunked:{chunk}"


def test_divergence_is_reported(tmp_path):
    msg = expect_error(tmp_path, "task.train.lr=1e38", "sim.duration_s=240")
    assert "diverged" in msg


def test_every_task_config_composes():
    for name in sorted(p.stem for p in (Path(CONF_DIR) / "task").glob("*.yaml")):
        cfg = compose_cfg(f"task={name}")
        assert cfg["task"]["name"] == name


def test_every_experiment_config_composes():
    names = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
    assert names
    for name in names:
        cfg = compose_cfg(f"experiment={name}")
        assert cfg["sim"]["duration_s"] > 0


@pytest.mark.parametrize(
    "alg,extra",
    [
        ("fedasync", ["trace=bernoulli"]),
        ("fedbuff", ["trace=diurnal", "server=periodic", "server.period_s=600"]),
        ("gossip", ["trace=bernoulli", "algorithm.topology=kregular", "algorithm.degree=5"]),
        ("dwa", ["trace=bernoulli", "server=outage_mid"]),
    ],
)
def test_every_algorithm_runs_end_to_end(tmp_path, alg, extra):
    cfg = compose_cfg(
        f"algorithm={alg}", "sim.duration_s=240", "sim.eval_every_s=120", "sim.num_nodes=30", *extra
    )
    summary = simulate(cfg, tmp_path / alg)
    rows = [json.loads(x) for x in (tmp_path / alg / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[-1]["virtual_time_s"] == 240.0
    # gossip over a k-regular overlay gains less in 240 s and varies with the seed: measured
    # gains for seeds 0-3 with the (fixed) k-regular overlay were 0.133-0.33 (the old overlay
    # failed +0.2 at seed 1 too), so +0.2 was seed luck; +0.1 still fails a model that does
    # not learn.
    gain = 0.1 if alg == "gossip" else 0.2
    assert rows[-1]["test_accuracy"] > rows[0]["test_accuracy"] + gain
    assert rows[-1]["energy_j"] > 0 and rows[-1]["bytes_up"] > 0
    assert 0.0 < rows[-1]["online_fraction"] < 1.0
    assert summary["test_accuracy"] == rows[-1]["test_accuracy"]


def test_a_new_run_in_an_old_directory_starts_a_new_metrics_file(tmp_path):
    cfg = compose_cfg(
        "algorithm=fedbuff", "sim.train=false", "sim.duration_s=240", "sim.eval_every_s=120"
    )
    for _ in range(2):
        simulate(cfg, tmp_path / "again")
    rows = (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["virtual_time_s"] for x in rows] == [0.0, 120.0, 240.0]


def test_system_only_mode_runs_without_training(tmp_path):
    cfg = compose_cfg(
        "algorithm=fedbuff",
        "trace=bernoulli",
        "sim.train=false",
        "sim.duration_s=600",
        "sim.eval_every_s=300",
        "sim.num_nodes=50",
    )
    simulate(cfg, tmp_path / "sys")
    rows = [json.loads(x) for x in (tmp_path / "sys" / "metrics.jsonl").read_text().splitlines()]
    assert "test_accuracy" not in rows[-1] and rows[-1]["updates_applied"] > 0


@pytest.mark.parametrize("launcher,key", [("joblib", "n_jobs"), ("slurm_gpu", "gpus_per_node")])
def test_launcher_configs_compose(launcher, key):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"launcher={launcher}"], return_hydra_config=True)
    assert key in cfg.hydra.launcher
    target = cfg.hydra.launcher._target_
    assert ("joblib" in target) if launcher == "joblib" else ("submitit" in target.lower())


def test_joblib_multirun_of_four_configs(tmp_path):
    r = cli(
        "-m",
        "launcher=joblib",
        "logger=disabled",
        "sim.progress=false",
        "sim.duration_s=120",
        "sim.eval_every_s=60",
        "sim.num_nodes=20",
        "algorithm=fedavg,fedasync",
        "seed=0,1",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    done = sorted(tmp_path.glob("*/summary.json"))
    assert len(done) == 4
