"""The evaluation suite (issue 13): grid rules, and the smoke scale end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scripts_loader import load_script

from dl.analysis.suite import SuiteError, cells, check_scale, run_overrides

REPO = Path(__file__).resolve().parent.parent
SPEC = {
    "scale": "t",
    "seeds": 2,
    "metric": "test_accuracy",
    "base": ["sim.num_nodes=4"],
    "tasks": {"a": {"overrides": ["task=digits_logreg"], "target": 0.5}},
    "algorithms": {x: [f"algorithm={x}"] for x in ("fedavg", "fedasync", "gossip", "dwa")},
    "servers": {"always": ["server=always"], "flaky": ["server=flaky"], "never": ["server=never"]},
}


def test_grid_rules():
    by = {(c.server, c.algorithm): c for c in cells(SPEC)}
    assert len(by) == 12  # 3 servers x 4 algorithms
    # FL without a server, and sync FedAvg outside server=always: n/a, no run
    assert by["never", "fedasync"].run_key is None and by["flaky", "fedavg"].run_key is None
    assert by["always", "fedavg"].run_key == "a/always/fedavg"
    # gossip runs once per task; DWA with the server never up reads that run
    assert {by[s, "gossip"].run_key for s in ("always", "flaky", "never")} == {"a/gossip"}
    assert by["never", "dwa"].run_key == "a/gossip" and by["flaky", "dwa"].run_key == "a/flaky/dwa"
    only = cells(SPEC, {"servers": ["flaky"], "algorithms": ["dwa"]})
    assert [(c.server, c.algorithm) for c in only] == [("flaky", "dwa")]
    # overrides: base, task, server, algorithm in that order (later wins in Hydra)
    assert run_overrides(SPEC, "a/flaky/dwa") == [
        "sim.num_nodes=4",
        "task=digits_logreg",
        "server=flaky",
        "algorithm=dwa",
    ]
    assert run_overrides(SPEC, "a/gossip")[-2:] == ["server=never", "algorithm=gossip"]


def test_bad_scale_files_name_the_key():
    with pytest.raises(SuiteError, match="missing key"):
        check_scale({"scale": "x"}, "x.yaml")
    with pytest.raises(SuiteError, match="seeds"):
        check_scale(dict(SPEC, seeds=0), "x.yaml")
    with pytest.raises(SuiteError, match="unknown algorithm"):
        check_scale(dict(SPEC, algorithms={"fedprox": []}), "x.yaml")


def test_every_scale_file_is_valid():
    for p in sorted((REPO / "conf" / "suite").glob("*.yaml")):
        spec = check_scale(yaml.safe_load(p.read_text()), str(p))
        assert spec["seeds"] >= (1 if p.stem == "smoke" else 5), p


def test_smoke_scale_end_to_end(tmp_path):
    """The whole pipeline on a slice of the smoke scale: runs, skip-if-done, table, figure."""
    cmd = [sys.executable, "scripts/suite.py", "--scale", "smoke", "--seeds", "1"]
    cmd += ["--servers", "always", "never", "--algorithms", "fedasync", "gossip", "dwa"]
    cmd += ["--out", str(tmp_path)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    meta = json.loads((tmp_path / "summary.json").read_text())
    by = {(c["server"], c["algorithm"]): c for c in meta["cells"]}
    assert by["never", "fedasync"]["n"] == 0  # n/a
    assert (
        by["always", "fedasync"]["n"] == 1 and by["never", "dwa"]["note"] == "= gossip (never up)"
    )
    # DWA with the server never up reads the gossip run: the same numbers
    acc = {k: c["metrics"].get("test_accuracy") for k, c in by.items()}
    assert acc["never", "dwa"]["final"] == acc["never", "gossip"]["final"]
    # the extra metric (node percentile) exists for gossip/DWA only, not for FedAsync
    assert by["always", "fedasync"]["metrics"]["node_accuracy_p90"] is None
    assert by["always", "dwa"]["metrics"]["node_accuracy_p90"]["final"]["median"] > 0
    assert (tmp_path / "digits.png").stat().st_size > 0
    assert "| digits (0.5) | always | fedasync |" in (tmp_path / "table.md").read_text()
    # a second call runs nothing (every run folder has its summary.json)
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "ran " not in p.stdout and "done before" in p.stdout


def test_only_completed_runs_count_as_done(tmp_path):
    from dl.analysis.launch import is_done

    assert not is_done(tmp_path)  # no summary
    for status, done in (("completed", True), ("failed", False), ("interrupted", False)):
        (tmp_path / "summary.json").write_text(json.dumps({"status": status}))
        assert is_done(tmp_path) is done
    (tmp_path / "summary.json").write_text("{}")  # written before `status` existed
    assert is_done(tmp_path)
    # keyed by command: done only if cmd.txt holds that command
    assert not is_done(tmp_path, "python -m dl.run seed=1")
    (tmp_path / "cmd.txt").write_text("python -m dl.run seed=1")
    assert is_done(tmp_path, "python -m dl.run seed=1")
    assert not is_done(tmp_path, "python -m dl.run seed=2")
    (tmp_path / "summary.json").write_text("{torn")
    assert not is_done(tmp_path)


def test_runs_are_keyed_by_their_overrides(tmp_path):
    """A run folder counts as done only for the overrides it was made with (not its folder), so
    a changed scale file reruns the cells it changes (the cpu DWA cells were rerun this way)."""

    from dl.analysis.launch import is_done

    suite = load_script("suite")
    d = tmp_path / "a" / "always" / "fedasync" / "seed0"
    key = suite.run_key(suite.command(SPEC, "a/always/fedasync", 0, d))
    assert "hydra.run.dir" not in key and {"algorithm=fedasync", "seed=0"} <= set(key.split())
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"status": "completed"}))
    (d / "cmd.txt").write_text(key)
    assert is_done(d, key)
    other = dict(SPEC, algorithms=dict(SPEC["algorithms"], fedasync=["algorithm=fedasync", "x=1"]))
    assert not is_done(d, suite.run_key(suite.command(other, "a/always/fedasync", 0, d)))
    # the same overrides in another output folder are the same run
    assert suite.run_key(suite.command(SPEC, "a/always/fedasync", 0, tmp_path / "b")) == key
