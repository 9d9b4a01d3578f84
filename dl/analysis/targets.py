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


def first_reaching(rows, key: str, target: float, lower: bool = False, x: str = "virtual_time_s"):
    """Index of the first row whose `key` reaches `target`, or None (censored)."""
    for i, r in enumerate(rows):
        v = r.get(key)
        if v is None:
            continue
        if (v <= target) if lower else (v >= target):
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
