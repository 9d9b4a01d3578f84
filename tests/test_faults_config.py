"""Fault injection (issue 14), configs and run folders: bad config values and keys, reused run
folders, runs started together, failed runs. Every fault ends in one line `error: ...` (exit 2)
or the correct behaviour; nothing is half-written."""

import json

import pytest
from faults_common import TINY, _yaml, cli, one_line

from dl.errors import ConfigError
from dl.resume_config import parse_overrides, precheck


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


def test_failed_run_records_status_and_error(tmp_path):
    run = tmp_path / "run"
    r = cli(*TINY, "task.train.lr=1e38", "sim.duration_s=240", f"hydra.run.dir={run}")
    line = one_line(r, "diverged")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line[len("error: ") :]
    assert line in (run / "run.log").read_text()
