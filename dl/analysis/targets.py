"""Time, energy and bytes to a target: the first evaluation at which a metric reaches it.

`first_reaching` is the one definition every script uses: the first row (in row order) whose
`key` is >= target (or <= target with `lower=True`, e.g. 0-1 error). None means censored: the
run ended (at `horizon`) without reaching the target; it is never replaced by the horizon.
Cumulative counters (`energy_j`, `bytes_up`, `bytes_down`) are read from that same row.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Reach:
    """The first row reaching a target, or a censored observation."""

    reached: bool
    time_s: float | None  # virtual time of that row; None if censored
    energy_j: float | None  # cumulative energy at that row
    bytes: float | None  # cumulative bytes up + down at that row
    horizon_s: float  # last virtual time observed (the censoring time)


def reaches(v: float, target: float, lower: bool = False) -> bool:
    """`v` has reached `target`: at or below it when `lower` (an error), else at or above."""
    return (v <= target) if lower else (v >= target)


def first_reaching(rows, key: str, target: float, lower: bool = False, x: str = "virtual_time_s"):
    """Index of the first row whose `key` reaches `target`, or None (censored)."""
    for i, r in enumerate(rows):
        v = r.get(key)
        if v is None:
            continue
        if reaches(v, target, lower):
            return i
    return None


def reach(rows, key: str, target: float, lower: bool = False) -> Reach:
    """Time, energy and bytes at the first row reaching `target` (see module doc)."""
    horizon = max((r.get("virtual_time_s", 0.0) for r in rows), default=0.0)
    i = first_reaching(rows, key, target, lower)
    if i is None:
        return Reach(False, None, None, None, horizon)
    r = rows[i]
    by = (r.get("bytes_up") or 0.0) + (r.get("bytes_down") or 0.0)
    return Reach(True, r.get("virtual_time_s"), r.get("energy_j"), by, horizon)


def value_at(rows, t: float, key: str, x: str = "virtual_time_s"):
    """`key` of the last row with x <= t (a step function), or None before the first row."""
    out = None
    for r in rows:
        if r.get(x, float("inf")) <= t and r.get(key) is not None:
            out = r[key]
    return out


def first_time(times, values, target: float, lower: bool = False):
    """The first of `times` whose value in `values` reaches `target` (as `first_reaching`), or
    None (censored); for curves held as arrays (a seed-mean error on a grid, a known fraction)."""
    for t, v in zip(times, values, strict=True):
        if v is not None and reaches(v, target, lower):
            return float(t)
    return None


def first_reaching_mean(rows, key: str, target: float, window: int, lower: bool = False):
    """Index of the first row at which the mean of `key` over the last `window` rows (that row
    included) reaches `target`, or None (censored; a window with a row lacking `key` does not
    count). A smoothed time-to-target that one lucky evaluation cannot reach."""
    for i in range(window - 1, len(rows)):
        vals = [r.get(key) for r in rows[i - window + 1 : i + 1]]
        if any(v is None for v in vals):
            continue
        m = sum(vals) / window
        if reaches(m, target, lower):
            return i
    return None
