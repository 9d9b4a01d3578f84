"""Server-availability scenarios, compiled to a one-row `Availability` the engine queries.

`always`, `never`, `periodic` (period_s, down_fraction, phase_s: the period starts at phase_s
mod period_s, down for its last `down_fraction`), `markov` (two-state, up at t = 0: exponential
up and down times with means mean_up_s / mean_down_s, seeded), `intervals` (explicit list of
[start_s, end_s] outages).
While the server is down FL makes no progress: nobody downloads, and uploads that arrive are
lost (`upload_policy: lost`) or kept by the client and retried each quantum until the server is
back (`upload_policy: retry`), which makes them staler.
"""

import numpy as np

from dl.errors import ConfigError
from dl.rng import SERVER_TRACE, numpy_rng
from dl.traces.availability import Availability, from_states

KINDS = ("always", "never", "periodic", "markov", "intervals")


def build_server(cfg: dict, horizon_s: float, seed: int) -> Availability:
    """Availability of the server (N = 1) over [0, horizon_s)."""
    kind = cfg.get("kind", "always")
    if kind == "always":
        return from_states(np.zeros(1), np.zeros(1), np.ones(1, bool), 1, horizon_s)
    if kind == "never":
        return from_states(np.zeros(1), np.zeros(1), np.zeros(1, bool), 1, horizon_s)
    if kind == "periodic":
        period, frac = float(cfg["period_s"]), float(cfg["down_fraction"])
        if period <= 0 or not 0.0 <= frac <= 1.0:
            raise ConfigError("server.period_s must be > 0 and server.down_fraction in [0, 1]")
        phase = float(cfg.get("phase_s", 0.0)) % period  # the schedule has period `period`
        starts = np.arange(-period, horizon_s + period, period) + phase
        times = np.stack([starts, starts + period * (1.0 - frac)], 1).reshape(-1)
        states = np.tile([True, False], len(starts))
        return _pack(times, states, horizon_s)
    if kind == "markov":
        up, down = float(cfg["mean_up_s"]), float(cfg["mean_down_s"])
        if up <= 0 or down <= 0:
            raise ConfigError("server.mean_up_s and server.mean_down_s must be > 0")
        gen = numpy_rng(seed, SERVER_TRACE)
        t, state, times, states = 0.0, True, [], []
        while t < horizon_s:
            times.append(t)
            states.append(state)
            t += gen.exponential(up if state else down)
            state = not state
        return _pack(np.array(times), np.array(states), horizon_s)
    if kind == "intervals":
        outages = sorted((float(a), float(b)) for a, b in cfg.get("outages", []))
        times, states = [0.0], [True]
        for a, b in outages:
            if b <= a or a < times[-1]:
                raise ConfigError(f"server.outages must be disjoint [start, end] pairs, got {a, b}")
            times += [a, b]
            states += [False, True]
        return _pack(np.array(times), np.array(states), horizon_s)
    raise ConfigError(f"unknown server.kind '{kind}' (choose from: {', '.join(KINDS)})")


def _pack(times: np.ndarray, states: np.ndarray, horizon_s: float) -> Availability:
    """Events (any times, sorted) -> Availability; the state at 0 is the last event <= 0."""
    times = np.asarray(times, np.float64)
    states = np.asarray(states, bool)
    before = times <= 0
    first = bool(states[before][-1]) if before.any() else bool(states[0])
    keep = times > 0
    t = np.concatenate([[0.0], times[keep]])
    s = np.concatenate([[first], states[keep]])
    return from_states(np.zeros(len(t)), t, s, 1, horizon_s)
