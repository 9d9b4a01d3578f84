"""From the overlay's choices to each task's availability timeline.

A node is available to task j exactly while it is online in the trace AND the overlay has it
assigned to task j (`assign[r, i] == j` during round r, i.e. on [r P, (r + 1) P)). The result
is an ordinary `Availability` (`dl.traces.availability`), so every training engine (FedAvg,
FedAsync, FedBuff, gossip, DWA) runs on it unchanged. Because a node is assigned to at most
one task per round, the tasks' timelines are disjoint per node: a device's time is shared, and
a node that switches task in the middle of a session loses that session (its energy is still
counted by the engine, as for going offline). Host side (numpy), once per run.
"""

import numpy as np

from dl.traces.availability import Availability, from_states, to_numpy


def _grouped_parity(node: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Per event, the parity of flips up to and including it within its node's group."""
    c = np.cumsum(flips.astype(np.int64))
    start = np.concatenate([[True], node[1:] != node[:-1]])
    base = np.maximum.accumulate(np.where(start, c - flips, 0))
    return ((c - base) % 2).astype(bool)


def task_availability(
    av: Availability, assign: np.ndarray, period_s: float, task: int, horizon_s: float
) -> Availability:
    """Timeline of `task` for every node: trace online AND assigned (`assign` `[R, N]`).

    The last round's assignment persists after round R - 1 (as the trace's last state does).
    """
    times, first = to_numpy(av)
    n = first.shape[0]
    mine = np.asarray(assign) == task  # [R, N]
    if mine.shape[1] != n:
        raise ValueError(f"assignment has {mine.shape[1]} nodes, availability {n}")
    # trace flips
    finite = np.isfinite(times)
    tr_node, tr_col = np.nonzero(finite)
    tr_time = times[tr_node, tr_col].astype(np.float64)
    # assignment flips at round starts r * period_s (r >= 1)
    ch_r, ch_node = np.nonzero(mine[1:] != mine[:-1])
    as_time = (ch_r + 1).astype(np.float64) * period_s
    # one start event per node at t = 0, then all flips, ordered by (node, time, start first)
    node = np.concatenate([np.arange(n), tr_node, ch_node])
    time = np.concatenate([np.zeros(n), tr_time, as_time])
    kind = np.concatenate([np.zeros(n, int), np.ones(tr_node.size, int), np.full(ch_node.size, 2)])
    order = np.lexsort((kind, time, node))
    node, time, kind = node[order], time[order], kind[order]
    trace_on = first[node] ^ _grouped_parity(node, kind == 1)
    mine_on = mine[0][node] ^ _grouped_parity(node, kind == 2)
    return from_states(node, time, trace_on & mine_on, n, horizon_s)


def split_availability(
    av: Availability, assign: np.ndarray, period_s: float, num_tasks: int, horizon_s: float
) -> list[Availability]:
    """`task_availability` for every task index."""
    return [task_availability(av, assign, period_s, j, horizon_s) for j in range(num_tasks)]
