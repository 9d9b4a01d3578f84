"""Benchmark helpers for `dl`: reference ceilings that throughput numbers are compared against.

`matmul` measures this machine's dense float32 matrix-multiply rate (GFLOP/s) with JAX, the
ceiling that `scripts/bench_train.py` quotes local-training throughput against; `timing.timed`
gives a jitted call's median wall time and mean CPU time.
"""

from dl.bench.matmul import MatmulResult, matmul_gflops, peak_matmul_gflops

__all__ = ["MatmulResult", "matmul_gflops", "peak_matmul_gflops"]
