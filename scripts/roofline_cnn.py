"""The FEMNIST-style CNN step against the matmul ceiling and memory bandwidth (issue 16).

Measures, in one process: the float32 matmul ceiling (`dl.bench.matmul`), the memory bandwidth
(a jitted scale of a 256 MiB array: 2 x 256 MiB moved), and one local SGD step of `model` at
batch B (`dl.train.local.make_node_train`, 1 step, the engine's own step), split into the
dense layers alone (forward, gradient and update of `dense1`/`dense2` on the step's
activations) and the rest. Then the roofline: a step needs FLOPs = 3 x forward FLOPs x B and
moves at least 4 passes over the parameters (read for the forward pass, read for the input
gradient, read + write for the update; the weight gradient fused into the update), so its time
is at least max(FLOPs / ceiling, bytes / bandwidth); the best fraction of the ceiling a step
can reach is FLOPs / ceiling over that bound. At batch 16 the 6.4 M-parameter dense layer
does 32 FLOPs per 4-byte weight per pass, which a 2-core AVX-512 CPU with ~20 GB/s cannot feed.

    python scripts/roofline_cnn.py [--model cnn_femnist] [--batch 16] [--readme]
Writes results/roofline_cnn.json (and the README block `roofline`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dl.analysis.readme import publish
from dl.bench.matmul import matmul_gflops
from dl.bench.timing import timed
from dl.models import init_params
from dl.models.flops import model_flops_per_example
from dl.models.registry import make_model
from dl.train.local import LocalTrainSpec, make_node_train

ROOT = Path(__file__).resolve().parent.parent

SHAPE = (28, 28, 1)


def bandwidth_gbs(mib: int = 256) -> float:
    """GB/s of a jitted `x * 1.0001` over `mib` MiB (read + write counted)."""
    x = jnp.ones((mib << 18,), jnp.float32)
    return 2 * x.nbytes / timed(jax.jit(lambda a: a * 1.0001), x)[0] / 1e9


def dense_part(params, batch: int, rng) -> float:
    """Seconds of the dense layers' share of a step: forward, gradients, SGD update."""
    d1, d2 = params["dense1"], params["dense2"]
    h = jnp.asarray(rng.standard_normal((batch, d1["kernel"].shape[0])), jnp.float32)
    y = jnp.asarray(rng.integers(0, d2["kernel"].shape[1], batch), jnp.int32)

    def loss(p, h, y):
        z = jax.nn.relu(h @ p[0]["kernel"] + p[0]["bias"]) @ p[1]["kernel"] + p[1]["bias"]
        return -jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1).mean()

    def step(p, h, y):
        g = jax.grad(loss)(p, h, y)
        return jax.tree.map(lambda a, b: a - 0.05 * b, p, g)

    return timed(jax.jit(step), (d1, d2), h, y)[0]


def roofline(flops: float, n_params: int, ceiling_gflops: float, bw_gbs: float) -> dict:
    """Lower bounds of a step's time (s) from its FLOPs and its minimum traffic (4 passes over
    the float32 parameters), and the best fraction of the ceiling the step can reach when
    compute and memory traffic overlap fully / not at all."""
    compute_s = flops / ceiling_gflops / 1e9
    memory_s = 4 * n_params * 4 / bw_gbs / 1e9
    return {
        "step_min_bytes": 4 * n_params * 4,
        "bound_s": {"compute": compute_s, "memory": memory_s},
        "best_frac_of_ceiling": compute_s / max(compute_s, memory_s),
        "best_frac_no_overlap": compute_s / (compute_s + memory_s),
    }


def measure(model: str, batch: int) -> dict:
    m = make_model(model, SHAPE, 10)
    params = init_params(m, SHAPE, jax.random.key(0))
    n_params = sum(int(p.size) for p in jax.tree.leaves(params))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, *SHAPE)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    apply = lambda p, xb: m.apply({"params": p}, xb)  # noqa: E731 (as dl.build wraps it)
    train = make_node_train(apply, LocalTrainSpec(batch_size=batch, local_steps=1, lr=0.05))
    step_s = timed(
        jax.jit(lambda p: train(p, x, y, jnp.int32(batch), jax.random.key(1))[0]), params
    )[0]
    ceiling = max(matmul_gflops(2048, 5).best_gflops, matmul_gflops(1024, 5).best_gflops)
    bw = bandwidth_gbs()
    flops = 3 * model_flops_per_example(model, SHAPE, 10) * batch
    roof = roofline(flops, n_params, ceiling, bw)
    return {
        "model": model,
        "batch": batch,
        "params": n_params,
        "matmul_ceiling_gflops": ceiling,
        "bandwidth_gbs": bw,
        "step_flops": flops,
        "step_s": step_s,
        "dense_part_s": dense_part(params, batch, rng),
        "achieved_frac_of_ceiling": roof["bound_s"]["compute"] / step_s,
        **roof,
        "loadavg": list(os.getloadavg()),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }


def table(r: dict) -> str:
    return "\n".join(
        [
            "| model, batch | params | step FLOPs | min. bytes moved | ceiling | bandwidth "
            "| step | dense layers | achieved | best possible (overlap / none) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {r['model']}, {r['batch']} | {r['params'] / 1e6:.2f} M "
            f"| {r['step_flops'] / 1e9:.2f} G | {r['step_min_bytes'] / 2**20:.0f} MiB "
            f"| {r['matmul_ceiling_gflops']:.0f} GFLOP/s | {r['bandwidth_gbs']:.1f} GB/s "
            f"| {r['step_s'] * 1e3:.1f} ms | {r['dense_part_s'] * 1e3:.1f} ms "
            f"| {r['achieved_frac_of_ceiling']:.0%} of ceiling "
            f"| {r['best_frac_of_ceiling']:.0%} / {r['best_frac_no_overlap']:.0%} |",
            "",
            f"1-min load average {r['loadavg'][0]:.1f}; medians of 15 calls; "
            f"GLIBC_TUNABLES={r['glibc_tunables'] or '(unset)'}.",
        ]
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cnn_femnist")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "results/roofline_cnn.json")
    ap.add_argument("--readme", action="store_true")
    a = ap.parse_args(argv)
    r = measure(a.model, a.batch)
    publish(r, a.out, table(r), "roofline" if a.readme else None)
    return r


if __name__ == "__main__":
    from dl import hugepages

    hugepages.reexec()
    main()
