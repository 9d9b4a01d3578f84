"""Node mapping strategies: `sim.node_map_chunk` is the batch `chunked` vmaps at a time."""

import jax
import jax.numpy as jnp
import pytest

from dl.errors import ConfigError
from dl.train.mapping import map_nodes, resolve_strategy


def scan_lengths(fn, x) -> list[int]:
    """Lengths of the top-level scans `fn(x)` lowers to (lax.map is a scan over batches)."""
    jaxpr = jax.make_jaxpr(fn)(x).jaxpr
    return [e.params["length"] for e in jaxpr.eqns if e.primitive.name == "scan"]


def test_chunk_size_sets_the_scan_length():
    x = jnp.arange(12.0)  # 12 nodes
    square = lambda v: v * v
    # 12 nodes in chunks of 3: a scan of 12 / 3 = 4 steps, each vmapping 3 nodes
    assert scan_lengths(map_nodes(square, "chunked:3"), x) == [4]
    # chunks of 4: 3 steps; the default chunk (8): 1 step of 8 plus the 4 left over, vmapped
    assert scan_lengths(map_nodes(square, "chunked:4"), x) == [3]
    assert scan_lengths(map_nodes(square, "chunked"), x) == [1]
    # plain lax.map: one step per node
    assert scan_lengths(map_nodes(square, "map"), x) == [12]
    for s in ("chunked:3", "chunked", "map", "vmap"):
        assert jnp.array_equal(map_nodes(square, s)(x), x * x)


def test_resolve_carries_the_chunk():
    assert resolve_strategy("chunked", "logreg", chunk=16) == "chunked:16"
    assert resolve_strategy("chunked", "logreg") == "chunked"
    assert resolve_strategy("vmap", "logreg", chunk=16) == "vmap"  # only `chunked` has a chunk
    assert resolve_strategy("auto", "cnn_small", backend="cpu", chunk=16) == "map"
    with pytest.raises(ConfigError, match="node_map_chunk"):
        resolve_strategy("chunked", "logreg", chunk=0)
