"""Timing a jitted call: median wall seconds and mean CPU seconds (all threads) per call.

The first call compiles and is not timed; each timed call ends with `block_until_ready`. CPU
time is the process's user + system time, so it counts every XLA thread (and their pool's
wait); `scripts/floor_logreg.py` sums it over ops, `scripts/roofline_cnn.py` uses the wall.
"""

from __future__ import annotations

import resource
import statistics
import time

import jax


def cpu_s() -> float:
    """User + system CPU seconds of this process so far (every thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(f, *args, repeats: int = 15) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds) of `repeats` calls of `f(*args)` after one
    warm-up call."""
    jax.block_until_ready(f(*args))
    ts = []
    c0 = cpu_s()
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), (cpu_s() - c0) / repeats
