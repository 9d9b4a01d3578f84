"""The host loop, one for one or several tasks: each task's runner advances chunk by chunk to
the next evaluation time of a schedule, its counters are drained into running totals, and a
row is recorded. The only Python loop is over chunks (DESIGN.md); `dl.simulate` (one task) and
`dl.simulate_multi` (several tasks on one population) set it up and call it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dl.errors import ConfigError

ENERGY_PARTS = ("energy_compute_j", "energy_radio_j")  # energy_j = their sum (wasted is a part)


@dataclass(frozen=True)
class Schedule:
    """Evaluate every `every_s` virtual seconds, at the end (`duration_s`), and every `step` s
    inside each window `(t0, t1, step)` of `windows` (`sim.eval_windows`: dense evaluation
    around an event, e.g. the server's return after an outage, without a dense whole run)."""

    duration_s: float
    every_s: float
    windows: tuple = ()  # ((t0, t1, step), ...) virtual seconds

    def __post_init__(self):
        if not (self.duration_s > 0 and self.every_s > 0):
            raise ConfigError("sim.duration_s and sim.eval_every_s must be > 0")
        for w in self.windows:
            num = isinstance(w, (list, tuple)) and len(w) == 3
            num = num and all(isinstance(v, (int, float)) and math.isfinite(v) for v in w)
            if not num or not (0 <= w[0] <= w[1] and w[2] > 0):
                raise ConfigError(
                    f"sim.eval_windows: {w} must be [t0, t1, step] with 0 <= t0 <= t1, step > 0"
                )

    @classmethod
    def of(cls, sim: dict) -> "Schedule":
        """The schedule of a `sim` config: duration_s, eval_every_s, eval_windows."""
        windows = sim.get("eval_windows") or ()
        if not isinstance(windows, (list, tuple)):
            raise ConfigError(f"sim.eval_windows: {windows} must be a list of [t0, t1, step]")
        windows = tuple(tuple(w) if isinstance(w, (list, tuple)) else w for w in windows)
        return cls(float(sim["duration_s"]), float(sim["eval_every_s"]), windows)

    def after(self, target: float, now: float) -> float:
        """The first regular evaluation time after `now`, stepping from `target`."""
        while target <= now:
            target += self.every_s
        return target

    def next_stop(self, target: float, now: float) -> float:
        """The next evaluation time after `now`: the regular `target` or an earlier window
        point `t0 + j step <= t1`, capped at the end of the run."""
        stop = target
        for t0, t1, step in self.windows:
            j = max(0, math.floor((now - t0) / step) + 1)
            t = t0 + j * step
            if t <= now:  # float rounding: step on
                t += step
            if t <= t1:
                stop = min(stop, t)
        return min(stop, self.duration_s)


@dataclass
class Lane:
    """One task in the loop: its runner, state, chunk key and drained counter totals."""

    runner: Any  # dl.algorithms.base.Runner
    state: Any
    key: Any
    totals: dict = field(default_factory=lambda: {"energy_j": 0.0})  # kept by advance()

    def clock(self) -> float:
        return self.runner.clock(self.state)

    def advance(self, t_stop: float) -> None:
        """Runs chunks up to `t_stop` (none if the lane is there) and drains its counters."""
        if self.clock() < t_stop:
            self.state = self.runner.chunk(self.state, self.key, t_stop)
        self.state, counts = self.runner.drain(self.state)
        for k, v in counts.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
        self.totals["energy_j"] = sum(self.totals.get(k, 0.0) for k in ENERGY_PARTS)


def run_loop(
    lanes: list[Lane],
    schedule: Schedule,
    record: Callable[[float], dict],
    row: dict,
    target: float,
    signals,
    max_rounds: float = float("inf"),
    after_row: Callable[[float, dict, float], None] | None = None,
    progress: Callable[[float], None] | None = None,
    at_target: bool = False,
) -> dict:
    """Advances every lane to each evaluation time until `schedule.duration_s` (or `max_rounds`
    rounds, read from the row's "round", or a stop signal), recording a row at each. `row` is
    the row before the loop and `target` the next evaluation time; `after_row(now, row, target)`
    runs after each record (checkpoints), `progress(now)` reports the clock. `at_target`: the
    clock of a row is the evaluation time (several tasks), else the lanes' clock, which a round
    may carry past it. Returns the last row."""
    now = min(lane.clock() for lane in lanes) if lanes else 0.0
    while now < schedule.duration_s and row.get("round", 0) < max_rounds:
        stop = schedule.next_stop(target, now)
        for lane in lanes:
            lane.advance(stop)
        now = min(lane.clock() for lane in lanes) if lanes else stop
        if at_target:
            now = max(now, stop)  # several tasks: rows at the evaluation time, not a lane's
        target = schedule.after(target, now)
        row = record(now)
        if progress is not None:
            progress(now)
        if after_row is not None:
            after_row(now, row, target)
        if signals.signum is not None:
            break
    return row
