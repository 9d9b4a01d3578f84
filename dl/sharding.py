"""Sharding the node axis across devices (jax.sharding): a 1-D mesh over every device.

Arrays with a leading node axis are split, everything else replicated; N is padded with inert
nodes to a multiple of the device count and random streams derive from (seed, time, node id), so
results do not depend on the device count. With `dist.enabled=true` every process simulates all
nodes on its own devices; only process 0 writes.
Notes: docs/NOTES.md#dlshardingpy
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dl.errors import ConfigError
from dl.traces.availability import Availability

AXIS = "nodes"


def init_distributed(cfg: dict) -> None:
    """`jax.distributed.initialize()` when `dist.enabled` (idempotent)."""
    d = cfg.get("dist") or {}
    if d.get("enabled") and not getattr(init_distributed, "_done", False):
        kwargs = {
            k: d[k]
            for k in ("coordinator_address", "num_processes", "process_id")
            if d.get(k) is not None
        }
        jax.distributed.initialize(**kwargs)
        init_distributed._done = True


def is_writer() -> bool:
    """Whether this process writes run outputs (process 0; always true in a single process)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches `name` (no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def make_mesh(mode) -> Mesh | None:
    """`sim.shard`: true / false / "auto" (shard when this process has more than one device)."""
    if mode in (False, "false", None):
        return None
    if mode not in (True, "true", "auto"):
        raise ConfigError(f"sim.shard must be true, false or auto, got {mode!r}")
    devices = jax.local_devices()
    if mode == "auto" and len(devices) == 1:
        return None
    return Mesh(np.array(devices), (AXIS,))


def padded_nodes(n: int, mesh: Mesh | None) -> int:
    d = 1 if mesh is None else mesh.devices.size
    return -(-n // d) * d


def shard_nodes(tree, mesh: Mesh | None, n: int):
    """Places leaves whose leading axis has length n on the node axis, the rest replicated."""
    if mesh is None:
        return tree
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    rep = NamedSharding(mesh, PartitionSpec())

    def put(x):
        if not hasattr(x, "shape"):
            return x
        s = split if (x.ndim >= 1 and x.shape[0] == n) else rep
        return jax.device_put(x, s)

    return jax.tree.map(put, tree)


def silence_padding(av: Availability, n_real: int) -> Availability:
    """Padded nodes (index >= n_real) are never online."""
    n = av.first_online.shape[0]
    if n == n_real:
        return av
    pad = np.arange(n) >= n_real
    times = np.where(pad[:, None], np.inf, np.asarray(av.times)).astype(np.float32)
    first = np.where(pad, False, np.asarray(av.first_online))
    return Availability(times=jax.numpy.asarray(times), first_online=jax.numpy.asarray(first))
