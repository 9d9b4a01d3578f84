"""Peak dense matrix-multiply throughput of the default JAX device, in GFLOP/s.

A jitted square product `a @ b` of two n x n matrices costs 2 n^3 FLOPs (one multiply-add = 2
FLOPs, the convention of `dl.models.flops`). Inputs live on the device before timing; the first
call compiles and is not timed; each repeat is one call ended by `block_until_ready`. The best
repeat is the ceiling (the machine is shared, and interference only ever slows a run down); the
median is reported too so the spread shows.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class MatmulResult:
    """One size's measurement: best and median GFLOP/s over `repeats` timed calls."""

    n: int
    dtype: str
    repeats: int
    best_gflops: float
    median_gflops: float
    times_s: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        d = asdict(self)
        d["times_s"] = list(self.times_s)
        return d


def matmul_gflops(
    n: int = 2048, repeats: int = 5, dtype: Any = jnp.float32, seed: int = 0
) -> MatmulResult:
    """Times a jitted n x n @ n x n product `repeats` times (after one warm-up call)."""
    if n < 1 or repeats < 1:
        raise ValueError(f"need n >= 1 and repeats >= 1, got n={n}, repeats={repeats}")
    rng = np.random.default_rng(seed)
    a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
    b = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return MatmulResult(
        n=n,
        dtype=jnp.dtype(dtype).name,
        repeats=repeats,
        best_gflops=flops / min(times) / 1e9,
        median_gflops=flops / statistics.median(times) / 1e9,
        times_s=tuple(times),
    )


def peak_matmul_gflops(
    sizes: Sequence[int] = (1024, 2048), repeats: int = 5, dtype: Any = jnp.float32
) -> dict[str, Any]:
    """Best GFLOP/s over several sizes: `{"gflops", "n", "dtype", "by_size": [...]}`."""
    results = [matmul_gflops(n, repeats, dtype) for n in sizes]
    best = max(results, key=lambda r: r.best_gflops)
    return {
        "gflops": best.best_gflops,
        "n": best.n,
        "dtype": best.dtype,
        "by_size": [r.as_dict() for r in results],
    }
