"""Aggregation over seeds: medians with percentile-bootstrap 95% intervals, censoring-aware.

A censored seed (target not reached within the horizon) counts as +inf: the median is finite
only while fewer than half of the seeds are censored, and an interval bound that falls on a
censored resample is +inf ("> horizon"). Efron & Tibshirani, "An Introduction to the
Bootstrap" (1993), percentile interval.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    n: int  # seeds
    censored: int  # seeds that never reached the target (counted as +inf)
    median: float  # may be inf
    lo: float  # lower bound of the 95% interval of the median
    hi: float  # upper bound (inf when censored resamples reach it)
    values: tuple  # the per-seed values, inf for censored

    def overlaps(self, other: "Summary") -> bool:
        """True when the two intervals share a point (no ordering may be claimed)."""
        return not (self.hi < other.lo or other.hi < self.lo)


def _median(a: np.ndarray) -> np.ndarray:
    """Median along the last axis; inf-safe (np.median of [1, inf] is inf, as intended)."""
    s = np.sort(a, axis=-1)
    n = a.shape[-1]
    mid = n // 2
    if n % 2:
        return s[..., mid]
    lo, hi = s[..., mid - 1], s[..., mid]
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(hi), hi, (lo + hi) / 2.0)


def summarize(values, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> Summary:
    """Median and bootstrap interval of per-seed values (None = censored = +inf)."""
    v = np.array([math.inf if x is None else float(x) for x in values], dtype=np.float64)
    if v.size == 0:
        raise ValueError("summarize needs at least one value")
    cens = int(np.isinf(v).sum())
    med = float(_median(v))
    if v.size == 1:
        return Summary(1, cens, med, med, med, tuple(v.tolist()))
    rng = np.random.default_rng(seed)
    boot = _median(v[rng.integers(0, v.size, size=(resamples, v.size))])
    a = (1.0 - level) / 2.0
    # order statistics, not interpolation, so an inf (censored) resample stays inf, not NaN
    lo = np.quantile(boot, a, method="lower")
    hi = np.quantile(boot, 1.0 - a, method="higher")
    return Summary(v.size, cens, med, float(lo), float(hi), tuple(v.tolist()))


def fmt(s: Summary, unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    """'m [lo, hi]' with '>h' for censored parts, for tables."""

    def one(x):
        return "cens." if math.isinf(x) else f"{x / scale:.{digits}f}{unit}"

    out = f"{one(s.median)} [{one(s.lo)}, {one(s.hi)}]"
    return out + (f" ({s.censored}/{s.n} cens.)" if s.censored else "")
