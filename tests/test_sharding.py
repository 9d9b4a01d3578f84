"""One vs eight devices: FedAvg, FedAsync, gossip and DWA give the same metrics when the node
axis is sharded over 8 (fake CPU) devices. Everything that is a gather/scatter/elementwise op
is bit-identical; sums over the node axis (consensus distance, energy and byte totals, losses)
may be added in a different order across shards, so they are compared at rtol 1e-5.
Not marked slow: about 50 s on a 2-core CPU, and it is the only check of sharding, so CI runs it."""

import json
import os
import subprocess
import sys

import pytest

DRIVER = r"""
import json, sys
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from dl.run import CONF_DIR
from dl.simulate import simulate
import jax
from dl.engine import jitted
made = []  # every chunk program built during the runs: each must compile exactly once
init = jitted.EnvChunk.__init__
jitted.EnvChunk.__init__ = lambda self, *a, **k: (made.append(self), init(self, *a, **k))[1]
out = {"devices": jax.device_count(), "compiles": {}}
for alg in ("fedavg", "fedasync", "gossip", "dwa"):
    extra = [] if alg == "fedavg" else ["trace=bernoulli"]
    if alg == "dwa":
        extra.append("server=outage_mid")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["logger=disabled", "sim.progress=false",
            f"algorithm={alg}", "sim.num_nodes=30", "sim.duration_s=240",
            "sim.eval_every_s=120", "sim.shard=auto", *extra])
    d = sys.argv[1] + "/" + alg
    simulate(OmegaConf.to_container(cfg, resolve=True), __import__("pathlib").Path(d))
    out[alg] = [json.loads(x) for x in open(d + "/metrics.jsonl")]
    out["compiles"][alg] = [c.name + ":" + str(c._cache_size()) for c in made]
    made.clear()
print(json.dumps(out))
"""

REDUCTIONS = ("consensus_distance", "energy", "bytes", "loss", "wall_time_s")


def run(tmp_path, devices):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path / str(devices))],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_one_and_eight_devices_give_the_same_metrics(tmp_path):
    one, eight = run(tmp_path, 1), run(tmp_path, 8)
    assert one["devices"] == 1 and eight["devices"] == 8
    # each chunk program compiles once per run on one device and on eight: a state leaf the
    # host rebuilt (FedAvg's drained counters, jnp.zeros on the default device) once came back
    # with another sharding than the chunk's output and recompiled it (2-3 s per run)
    for res in (one, eight):
        for alg, made in res["compiles"].items():
            assert made and all(m.endswith(":1") for m in made), (res["devices"], alg, made)
    for alg in ("fedavg", "fedasync", "gossip", "dwa"):
        assert len(one[alg]) == len(eight[alg]) == 3
        for a, b in zip(one[alg], eight[alg], strict=True):
            assert a.keys() == b.keys()
            for k in a:
                if k == "wall_time_s":
                    continue
                if any(tag in k for tag in REDUCTIONS):
                    assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-9), (alg, k)
                else:
                    assert a[k] == b[k], (alg, k, a[k], b[k])
