"""The logistic-regression round's floor on XLA:CPU, op by op (issue 16).

Issue 16 asks our logistic FedAvg round (N clients, E = 10 SGD steps of batch 32, 64 features,
10 classes; `bench/peers/common.py`) to be >= 10x FedJAX's. This script times, in one process,
each op one local step needs, alone, for all N clients at once (as the vmapped engine runs
them): the minibatch gather `x[node, idx]` (by index, as the engines read it), the forward
product, the softmax cross-entropy gradient, the weight gradient (the engine's multiply-reduce,
`dl.models.small_dot`, and XLA's batched matmul; the cheaper counts) and the SGD update,
recording each op's CPU time over all threads; then the engine's whole training call
(`make_batch_train`, E steps). The floor is E x (the per-step ops' CPU time) / cores: the
training's wall time if nothing else ran and those ops kept every core busy. FedJAX's round
(median of `results/bench_peers.json`) over that floor is the most an engine built from these
XLA:CPU ops could reach against it on this machine.

    python scripts/floor_logreg.py [--nodes 1000] [--readme]
Writes results/floor_logreg.json (and the README block `floor_logreg`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dl.analysis.readme import publish
from dl.bench.timing import timed
from dl.models.registry import make_model
from dl.train.local import LocalTrainSpec, make_batch_train, node_keys
from dl.train.loss import mean_xent

ROOT = Path(__file__).resolve().parent.parent
STEP_OPS = ("gather", "forward", "xent_grad", "weight_grad", "update")


def floor(per_op_cpu_s: dict, steps: int, cores: int) -> dict:
    """per_op_cpu_s: CPU seconds of each op of one step for all clients ('weight_grad' the
    cheaper formulation) -> {"step_cpu_s": their sum, "floor_s": steps x step_cpu_s / cores}:
    the training's wall time if those ops kept every core busy and nothing else ran."""
    step = sum(per_op_cpu_s[k] for k in STEP_OPS)
    return {"step_cpu_s": step, "floor_s": steps * step / cores}


def best_ratio(peer_round_s: float | None, floor_s: float) -> float | None:
    """The highest peer-round / our-round ratio the floor allows (None without a peer time)."""
    return None if peer_round_s is None else peer_round_s / floor_s


def peer_round_s(path: Path, peer: str, nodes: int) -> float | None:
    """Median over repeats of `peer`'s logistic round at N = nodes in a bench_peers JSON."""
    if not path.exists():
        return None
    for g in json.loads(path.read_text())["groups"]:
        if g["model"] == "logreg" and g["nodes"] == nodes:
            runs = g["runs"].get(peer) or []
            meds = [r["median_round_s"] for r in runs if "median_round_s" in r]
            return statistics.median(meds) if meds else None
    return None


def measure(n: int, m: int = 320, b: int = 32, d: int = 64, c: int = 10, steps: int = 10) -> dict:
    """Times of one step's ops for n clients, and of the engine's training call."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, m, d), np.float32))  # [N, M, D]
    y = jnp.asarray(rng.integers(0, c, (n, m)).astype(np.int32))  # [N, M]
    nodes = jnp.arange(n)
    idx = jnp.asarray(rng.integers(0, m, (n, b)).astype(np.int32))  # [N, B]
    w = jnp.asarray(rng.standard_normal((n, d, c), np.float32) * 0.1)  # [N, D, C]
    xb = jax.vmap(lambda i, j: x[i, j])(nodes, idx)  # [N, B, D]
    yb = jax.vmap(lambda i, j: y[i, j])(nodes, idx)  # [N, B]
    z = jnp.einsum("kbi,kio->kbo", xb, w)  # [N, B, C]
    g = jax.nn.softmax(z) - jax.nn.one_hot(yb, c)  # [N, B, C]

    ops = {
        "gather": (jax.jit(jax.vmap(lambda i, j: x[i, j])), nodes, idx),
        "forward": (jax.jit(lambda a, w: jnp.einsum("kbi,kio->kbo", a, w)), xb, w),
        "xent_grad": (
            jax.jit(jax.vmap(jax.grad(lambda z, y: mean_xent(z, y)))),
            z,
            yb,
        ),
        "weight_grad_multiply_reduce": (
            jax.jit(lambda a, g: (a[..., :, None] * g[..., None, :]).sum(1)),
            xb,
            g,
        ),
        "weight_grad_batched_matmul": (
            jax.jit(lambda a, g: jnp.einsum("kbi,kbo->kio", a, g)),
            xb,
            g,
        ),
        "update": (jax.jit(lambda w, dw: w - 0.1 * dw), w, w),
    }
    wall, cpu = {}, {}
    for k, (f, *args) in ops.items():
        wall[k], cpu[k] = timed(f, *args)
    for d_ in (wall, cpu):
        d_["weight_grad"] = min(d_["weight_grad_multiply_reduce"], d_["weight_grad_batched_matmul"])

    model = make_model("logreg", (d,), c)
    params = model.init(jax.random.key(0), jnp.zeros((1, d)))
    spec = LocalTrainSpec(batch_size=b, local_steps=steps, lr=0.1)
    train = make_batch_train(model.apply, spec, "vmap")
    start = jax.tree.map(lambda p: jnp.broadcast_to(p, (n,) + p.shape), params)
    keys = node_keys(jax.random.key(1), jnp.zeros((), jnp.int32), nodes)
    counts, active = jnp.full((n,), m, jnp.int32), jnp.ones((n,), bool)
    call = jax.jit(lambda s: train(s, x, y, counts, active, keys, nodes=nodes))
    engine_s, engine_cpu_s = timed(call, start, repeats=9)
    cores = len(os.sched_getaffinity(0))
    return {
        "nodes": n,
        "examples_per_client": m,
        "batch": b,
        "features": d,
        "classes": c,
        "steps": steps,
        "cores": cores,
        "per_op_s": wall,
        "per_op_cpu_s": cpu,
        **floor(cpu, steps, cores),
        "engine_train_s": engine_s,
        "engine_train_cpu_s": engine_cpu_s,
    }


def table(r: dict) -> str:
    ms = lambda s: f"{s * 1e3:.2f}"  # noqa: E731
    c = r["per_op_cpu_s"]
    fj, best = r.get("fedjax_round_s"), r.get("best_ratio")
    head = (
        "| N | CPU ms per step: gather | forward | xent grad | weight grad (mult.-reduce / "
        "matmul) | update | step | floor: E x step / cores | engine training: wall (CPU) | "
        "FedJAX round | FedJAX / floor |"
    )
    row = (
        f"| {r['nodes']:,} | {ms(c['gather'])} | {ms(c['forward'])} | {ms(c['xent_grad'])} | "
        f"{ms(c['weight_grad_multiply_reduce'])} / {ms(c['weight_grad_batched_matmul'])} | "
        f"{ms(c['update'])} | {ms(r['step_cpu_s'])} | {ms(r['floor_s'])} ms | "
        f"{ms(r['engine_train_s'])} ms ({ms(r['engine_train_cpu_s'])}) | "
        f"{'-' if fj is None else ms(fj) + ' ms'} | {'-' if best is None else f'{best:.1f}x'} |"
    )
    sep = "|" + "---|" * 11
    note = (
        f"\n{r['cores']} cores, {r['steps']} steps of batch {r['batch']}, {r['features']} "
        f"features, {r['classes']} classes; 1-min load average {r['loadavg']:.1f}; per op the "
        f"CPU time of all threads, mean of 15 calls (engine: 9; wall = median); FedJAX: median "
        f"round of results/bench_peers.json; GLIBC_TUNABLES={r['glibc_tunables'] or '(unset)'}.\n"
    )
    return "\n".join([head, sep, row]) + "\n" + note


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--peers", type=Path, default=ROOT / "results" / "bench_peers.json")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "floor_logreg.json")
    ap.add_argument("--readme", action="store_true")
    a = ap.parse_args(argv)
    r = measure(a.nodes)
    r["fedjax_round_s"] = peer_round_s(a.peers, "fedjax", a.nodes)
    r["best_ratio"] = best_ratio(r["fedjax_round_s"], r["floor_s"])
    r["loadavg"] = os.getloadavg()[0]
    r["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES", "")
    publish(r, a.out, table(r), "floor_logreg" if a.readme else None)
    return r


if __name__ == "__main__":
    from dl import hugepages

    hugepages.reexec()
    main()
