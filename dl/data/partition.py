"""Split a dataset's training set over N simulated nodes, padded to a dense [N, M, ...] layout.

Schemes (``partition_indices`` documents each): ``iid``, ``dirichlet`` (Hsu et al. 2019),
``shards`` (McMahan et al. 2017), ``natural`` (one node per user in ``groups_train``) and
``single_class`` (every node holds one label). The result is a pure function of the dataset, the
arguments and ``seed``: the same call gives bit-identical arrays.

Each node's examples are stored in a random (seeded) order, so ``max_examples`` keeps a random
subset and the first rows are not label-sorted. Real rows come first; padding rows are zero with
``mask`` False.
"""

from __future__ import annotations

import numpy as np
from flax import struct

from dl.data.dataset import Dataset
from dl.errors import ConfigError

SCHEMES: tuple[str, ...] = ("iid", "dirichlet", "shards", "natural", "single_class")
_LABEL_SCHEMES = ("dirichlet", "shards", "single_class")


@struct.dataclass
class NodeData:
    """Per-node training data, host numpy arrays (the caller converts to jnp).

    N = nodes (including inert padding nodes), M = rows per node (max real count), T = sequence len.
    """

    x: np.ndarray  # [N, M, *input_shape] float32 (int32 tokens for text); zeros where ~mask
    y: np.ndarray  # [N, M] int32 labels, or [N, M, T] next-token ids; zeros where ~mask
    counts: np.ndarray  # [N] int32 real examples per node (0 for padding nodes)
    mask: np.ndarray  # [N, M] bool, True for real examples (the first counts[i] rows)

    @property
    def num_nodes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def max_examples(self) -> int:
        return int(self.mask.shape[1])


def _check_args(ds: Dataset, num_nodes: int, scheme: str, alpha: float, shards: int) -> None:
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown partition scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    if num_nodes < 1:
        raise ConfigError(f"partition needs num_nodes >= 1, got {num_nodes}")
    if num_nodes > ds.num_train:
        raise ConfigError(
            f"num_nodes={num_nodes} exceeds the {ds.num_train} training examples of {ds.name}"
        )
    if scheme in _LABEL_SCHEMES and ds.y_train.ndim != 1:
        raise ConfigError(
            f"partition scheme {scheme!r} needs one label per example, but {ds.name} has "
            f"sequence targets; use iid or natural"
        )
    if scheme == "dirichlet" and not alpha > 0:
        raise ConfigError(f"dirichlet partition needs alpha > 0, got {alpha}")
    if scheme == "shards" and (shards < 1 or num_nodes * shards > ds.num_train):
        raise ConfigError(
            f"shards partition needs 1 <= num_nodes*shards_per_node <= {ds.num_train}, "
            f"got {num_nodes}*{shards}"
        )


def _group(owner: np.ndarray, num_nodes: int) -> list[np.ndarray]:
    """owner [n] node id per example (-1 = unused) -> per-node example indices, ascending."""
    order = np.argsort(owner, kind="stable")
    sizes = np.bincount(owner[owner >= 0], minlength=num_nodes)
    start = int(np.sum(owner < 0))
    return np.split(order[start:], np.cumsum(sizes)[:-1])


def _iid(n: int, num_nodes: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), num_nodes)


def _dirichlet(
    y: np.ndarray, num_nodes: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per class c: shuffle its examples, draw p ~ Dir(alpha * 1_N), give node k a p_k share.

    Nodes left empty then get one example each, moved from the currently largest node (random
    example of it); with num_nodes <= n the largest node always has at least two.
    """
    owner = np.empty(len(y), dtype=np.int64)  # [n] node of each example
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))  # [n_c]
        p = rng.dirichlet(np.full(num_nodes, alpha))  # [N]
        cuts = (np.cumsum(p)[:-1] * len(members)).astype(np.int64)  # [N-1] split points
        owner[members] = np.searchsorted(cuts, np.arange(len(members)), side="right")
    counts = np.bincount(owner, minlength=num_nodes)  # [N]
    for empty in np.flatnonzero(counts == 0):
        donor = int(np.argmax(counts))
        moved = rng.choice(np.flatnonzero(owner == donor))
        owner[moved] = empty
        counts[donor] -= 1
        counts[empty] += 1
    return _group(owner, num_nodes)


def _shards(
    y: np.ndarray, num_nodes: int, per_node: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Sort by label (stable), cut into num_nodes*per_node near-equal shards, deal them randomly."""
    shards = np.array_split(np.argsort(y, kind="stable"), num_nodes * per_node)
    perm = rng.permutation(len(shards))  # node k gets shards perm[k*per_node : (k+1)*per_node]
    return [
        np.concatenate([shards[s] for s in perm[k * per_node : (k + 1) * per_node]])
        for k in range(num_nodes)
    ]


def _natural(groups: np.ndarray | None, num_nodes: int, name: str) -> list[np.ndarray]:
    """One node per group; with fewer nodes than groups, the num_nodes largest groups (ties: id)."""
    if groups is None:
        raise ConfigError(f"partition scheme 'natural' needs user groups, and {name} has none")
    ids, sizes = np.unique(groups, return_counts=True)
    if num_nodes > len(ids):
        raise ConfigError(
            f"natural partition of {name} has {len(ids)} groups, fewer than num_nodes={num_nodes}"
        )
    keep = np.sort(ids[np.lexsort((ids, -sizes))[:num_nodes]])  # ascending group id = node order
    pos = np.minimum(np.searchsorted(keep, groups), num_nodes - 1)  # [n] candidate node
    owner = np.where(keep[pos] == groups, pos, -1)  # [n] node, or -1 for a dropped group
    return _group(owner, num_nodes)


def _single_class(y: np.ndarray, num_nodes: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Node k holds only class classes[k % C]; each class is split evenly over its nodes."""
    classes = np.unique(y)
    if num_nodes < len(classes):
        raise ConfigError(
            f"single_class partition needs num_nodes >= {len(classes)} classes, got {num_nodes}"
        )
    out: list[np.ndarray] = [np.empty(0, np.int64)] * num_nodes
    for ci, c in enumerate(classes):
        nodes = np.arange(ci, num_nodes, len(classes))  # nodes assigned class c
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) < len(nodes):
            raise ConfigError(
                f"single_class partition: class {c} has {len(members)} examples "
                f"for {len(nodes)} nodes"
            )
        for node, part in zip(nodes, np.array_split(members, len(nodes)), strict=True):
            out[int(node)] = part
    return out


def partition_indices(
    ds: Dataset,
    num_nodes: int,
    scheme: str,
    *,
    seed: int,
    alpha: float = 0.5,
    shards_per_node: int = 2,
    max_examples: int | None = None,
) -> list[np.ndarray]:
    """Per-node indices into ``ds.x_train`` (int64 [count_k] each), in the stored row order.

    Every node gets at least one example. iid, dirichlet, shards and single_class use every
    training example exactly once (before ``max_examples`` truncates each node to a random
    subset); natural with fewer nodes than groups leaves out the smaller groups' examples.
    """
    _check_args(ds, num_nodes, scheme, alpha, shards_per_node)
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples must be >= 1 or null, got {max_examples}")
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        parts = _iid(ds.num_train, num_nodes, rng)
    elif scheme == "dirichlet":
        parts = _dirichlet(ds.y_train, num_nodes, float(alpha), rng)
    elif scheme == "shards":
        parts = _shards(ds.y_train, num_nodes, int(shards_per_node), rng)
    elif scheme == "natural":
        parts = _natural(ds.groups_train, num_nodes, ds.name)
    else:
        parts = _single_class(ds.y_train, num_nodes, rng)
    parts = [rng.permutation(p.astype(np.int64)) for p in parts]
    return [p[:max_examples] for p in parts] if max_examples is not None else parts


def partition(
    ds: Dataset,
    num_nodes: int,
    scheme: str,
    *,
    seed: int,
    alpha: float = 0.5,
    shards_per_node: int = 2,
    max_examples: int | None = None,
    pad_nodes_to: int | None = None,
) -> NodeData:
    """Partition ``ds.x_train`` over ``num_nodes`` nodes into a padded :class:`NodeData`.

    ``pad_nodes_to``: append inert nodes (count 0, mask all False) until N is a multiple of it.
    """
    if pad_nodes_to is not None and pad_nodes_to < 1:
        raise ConfigError(f"pad_nodes_to must be >= 1 or null, got {pad_nodes_to}")
    parts = partition_indices(
        ds,
        num_nodes,
        scheme,
        seed=seed,
        alpha=alpha,
        shards_per_node=shards_per_node,
        max_examples=max_examples,
    )
    return gather_nodes(ds, parts, pad_nodes_to=pad_nodes_to)


def gather_nodes(
    ds: Dataset, parts: list[np.ndarray], *, pad_nodes_to: int | None = None
) -> NodeData:
    """Dense padded NodeData from per-node index lists into ``ds.x_train``."""
    counts = np.array([len(p) for p in parts], dtype=np.int32)  # [N_real]
    pad = pad_nodes_to or 1
    n_nodes = -(-len(parts) // pad) * pad
    m = max(int(counts.max(initial=0)), 1)
    src = np.concatenate(parts) if parts else np.empty(0, np.int64)  # [total]
    node = np.repeat(np.arange(len(parts)), counts)  # [total]
    slot = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)  # [total]
    x = np.zeros((n_nodes, m, *ds.x_train.shape[1:]), dtype=ds.x_train.dtype)
    y = np.zeros((n_nodes, m, *ds.y_train.shape[1:]), dtype=ds.y_train.dtype)
    mask = np.zeros((n_nodes, m), dtype=bool)
    x[node, slot] = ds.x_train[src]
    y[node, slot] = ds.y_train[src]
    mask[node, slot] = True
    all_counts = np.zeros(n_nodes, dtype=np.int32)
    all_counts[: len(parts)] = counts
    return NodeData(x=x, y=y, counts=all_counts, mask=mask)


def label_histogram(nd: NodeData, num_classes: int) -> np.ndarray:
    """Real examples per (node, class), int64 [N, C]; sequence targets count every position."""
    mask = nd.mask.reshape(nd.mask.shape + (1,) * (nd.y.ndim - 2))
    mask = np.broadcast_to(mask, nd.y.shape)  # [N, M] or [N, M, T]
    node = np.broadcast_to(
        np.arange(nd.y.shape[0]).reshape((-1,) + (1,) * (nd.y.ndim - 1)), nd.y.shape
    )
    flat = (node * num_classes + nd.y.astype(np.int64))[mask]
    hist = np.bincount(flat, minlength=nd.y.shape[0] * num_classes)
    return hist.reshape(nd.y.shape[0], num_classes)
