"""Several tasks on one population: the overlay's assignment, per-task availability, and a tiny
end-to-end run with two trained tasks and an abusive one."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dl.errors import ConfigError
from dl.overlay import choice as ch
from dl.overlay.assignment import task_availability
from dl.overlay.evolve import OverlaySpec, run_overlay
from dl.overlay.tasks import complete_spec, make_table
from dl.run import CONF_DIR
from dl.simulate import simulate
from dl.traces.availability import is_online
from dl.traces.synthetic import bernoulli


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["logger=disabled", "sim.progress=false", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


N, PERIOD, ROUNDS = 200, 60.0, 60


@pytest.fixture(scope="module")
def overlay():
    """Honest, perfect reviewers (f = 0, q = 1): the benign tasks pass, the abusive one not."""
    return _overlay(f=0.0, q=1.0)


_online_at = jax.jit(jax.vmap(is_online, in_axes=(None, 0)))


def _online(av, ts):
    return np.asarray(_online_at(av, jnp.asarray(ts, jnp.float32)))  # [S, N]


def _overlay(f, q, seed=0):
    specs = [
        complete_spec("a", {"publish_s": 0, "model_mb": 1.0, "reward": 1.0}),
        complete_spec("b", {"publish_s": 600, "model_mb": 1.0, "reward": 2.0}),
        complete_spec("evil", {"publish_s": 300, "model_mb": 1.0, "abusive": True, "reward": 9.0}),
    ]
    table = make_table(["a", "b", "evil"], specs)
    av = bernoulli(N, ROUNDS * PERIOD + 1000, period_s=300.0, p_online=0.4, seed=seed)
    rng = np.random.default_rng(seed)
    feasible = jnp.asarray(rng.random((N, 3)) < 0.8)
    e_sess = jnp.asarray(rng.uniform(5.0, 50.0, (N, 3)), jnp.float32)
    spec = OverlaySpec(f=f, q=q, period_s=PERIOD, choice_period_s=600.0, chunk_rounds=32)
    params = ch.ChoiceParams()
    ov = run_overlay(jax.random.key(seed), spec, table, av, ROUNDS, feasible, e_sess, params)
    return ov, av, np.asarray(feasible)


def test_overlay__assigned_nodes_are_online_feasible_and_know_an_approved_task(overlay):
    ov, av, feasible = overlay
    online = _online(av, ov.times)  # [R, N]
    assert ov.assign.shape == (ROUNDS, N) and ov.assign.dtype == np.int8
    rev = ov.review
    r_idx, node = np.nonzero((ov.assign >= 0) & online)
    task = ov.assign[r_idx, node]
    assert task.size > 0
    assert feasible[node, task].all()
    assert rev.approved[task].all() and (r_idx >= rev.decided_round[task]).all()
    # participants never exceed the online nodes that know the task; knowledge spreads
    assert (ov.participants <= ov.known_online).all()
    frac = ov.known_online[-1, :2] / ov.online[-1]
    assert (frac == 1.0).all(), frac
    np.testing.assert_array_equal(
        ov.participants, np.stack([((ov.assign == j) & online).sum(1) for j in range(3)], 1)
    )


def test_overlay__abusive_task_with_honest_perfect_reviewers_is_never_assigned(overlay):
    ov, _, _ = overlay
    assert list(ov.review.approved) == [True, True, False]
    assert not (ov.assign == 2).any() and ov.known[:, 2].max() == 0


def test_task_availability__is_trace_and_assignment_and_disjoint(overlay):
    ov, av, _ = overlay
    ts = np.random.default_rng(3).uniform(0, ROUNDS * PERIOD, 400).astype(np.float32)
    base = _online(av, ts)  # [S, N]
    r = np.minimum((ts // PERIOD).astype(int), ROUNDS - 1)
    got = []
    for j in range(3):
        tav = task_availability(av, ov.assign, PERIOD, j, ROUNDS * PERIOD + 1000)
        on = _online(tav, ts)
        np.testing.assert_array_equal(on, base & (ov.assign[r] == j))
        got.append(on)
    assert (np.sum(got, axis=0) <= 1).all()  # one task per node at a time
    assert not got[2].any()


def _tiny(tmp_path, *extra):
    overrides = [
        "sim.num_nodes=40",
        "sim.duration_s=900",
        "sim.eval_every_s=300",
        "trace=bernoulli",
        "discovery=push_pull",
        "discovery.review.deadline_s=60",
        *extra,
    ]
    cfg = compose_cfg(*overrides)
    task = cfg["task"]
    cfg["tasks"] = {
        "lr": {"spec": {"reward": 1.0}, "task": task, "algorithm": dict(cfg["algorithm"])},
        "gl": {
            "spec": {"reward": 1.0, "publish_s": 120},
            "task": task,
            "algorithm": {**compose_cfg("algorithm=gossip")["algorithm"], "quantum_s": 5.0},
            "server": {"kind": "never"},
        },
        "evil": {"spec": {"abusive": True, "model_mb": 1.0, "reward": 50.0}},
    }
    cfg["discovery"]["review"] |= {"f": 0.0, "q": 1.0}
    return cfg


def test_two_tasks_end_to_end__per_task_metrics(tmp_path):
    cfg = _tiny(tmp_path)
    out = simulate(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert last["virtual_time_s"] >= 900
    for name in ("lr", "gl"):
        assert last[f"{name}/approved"] and last[f"{name}/known_fraction"] == 1.0
        assert last[f"{name}/ever_chose"] > 0
        assert last[f"{name}/energy_j"] > 0
    assert last["lr/test_accuracy"] > 0.5 and last["gl/test_accuracy"] > 0.3
    assert not last["evil/approved"] and last["evil/ever_chose"] == 0
    assert out["evil/review"].startswith("rejected")
    assert last["energy_j"] == pytest.approx(last["lr/energy_j"] + last["gl/energy_j"])
    ov = json.loads((tmp_path / "run" / "overlay.json").read_text())
    assert ov["names"] == ["lr", "gl", "evil"] and ov["review"]["approved"] == [True, True, False]


def test_bad_task_config_is_one_line(tmp_path):
    cfg = _tiny(None)
    cfg["tasks"]["gl"]["spec"]["rewrd"] = 1.0
    with pytest.raises(ConfigError, match="unknown keys in tasks.gl.spec"):
        simulate(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    cfg = _tiny(None)
    del cfg["tasks"]["lr"]["algorithm"]
    with pytest.raises(ConfigError, match="needs both task and algorithm"):
        simulate(cfg, tmp_path / "run")
