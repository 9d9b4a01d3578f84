"""Row-sparse model work (issue 17, `dl.engine.rows`): the selected rows are updated c at a
time in ceil(selected / c) passes, with the same result as a dense select, and the gossip and
DWA chunks update node models in place (no copy of an [N, ...] node-model array in the
compiled program) with results that do not depend on the pass size."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compile_budget import ASPEC, ENG, GSPEC, PARAMS, TRAIN, N, apply, async_envs

from dl.engine.async_clock import init_async
from dl.engine.gossip_clock import (
    gossip_capacity,
    init_gossip,
    make_gossip_chunk,
    make_gossip_quantum,
)
from dl.engine.hybrid import init_dwa, make_dwa_chunk
from dl.engine.rows import for_rows, row_chunk, take_rows, update_rows
from dl.rules.dwa import DWASpec


def test_update_rows_equals_a_dense_select_and_runs_ceil_count_over_c_passes():
    # x = rows [i, 10 i]; rows 1, 3, 4 selected; fn doubles a row and adds its index:
    # row 1 -> [2+1, 20+1] = [3, 21], row 3 -> [6+3, 60+3] = [9, 63], row 4 -> [12, 84]
    x = jnp.stack([jnp.arange(6.0), 10 * jnp.arange(6.0)], 1)
    mask = jnp.array([False, True, False, True, True, False])
    want = np.array([[0, 0], [3, 21], [2, 20], [9, 63], [12, 84], [5, 50]], np.float32)

    def fn(idx, now):
        return 2 * take_rows(now, idx) + jnp.minimum(idx, 5)[:, None]

    for c in (1, 2, 3, 6, 100):
        got = jax.jit(lambda x, m, c=c: update_rows(x, m, c, fn))(x, mask)
        np.testing.assert_array_equal(got, want)
        # passes: ceil(3 / c) (c clamped to N = 6)
        passes = for_rows(mask, c, jnp.zeros((), jnp.int32), lambda k, idx: k + 1)
        assert int(passes) == -(-3 // min(c, 6))
    # nothing selected: no pass at all
    assert int(for_rows(mask & False, 2, jnp.zeros((), jnp.int32), lambda k, idx: k + 1)) == 0


def test_row_chunk_is_a_quarter_of_the_expected_rows_within_bounds():
    assert row_chunk(1000, 100.0) == 25  # ceil(100 / 4)
    assert row_chunk(1000, 10.0) == 8  # floor of 8 rows
    assert row_chunk(5, 100.0) == 5  # at most N


def chunk_states(row_chunk_size):
    """Gossip state after 30 quanta with every node online half the time, 16 nodes."""
    _, genv = async_envs(1)
    step = make_gossip_quantum(apply, TRAIN, GSPEC, genv, 200, "vmap", row_chunk_size)
    everyone = jnp.ones((N,), bool)
    st = init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 200))
    # distinct node models, so a merge from a wrong row or a skipped row shows
    st = st.replace(
        params=jax.tree.map(
            lambda p: p + jnp.arange(N).reshape((N,) + (1,) * (p.ndim - 1)), st.params
        )
    )
    run = jax.jit(
        lambda s: jax.lax.fori_loop(0, 30, lambda _, s: step(s, jax.random.key(2), everyone), s)
    )
    return run(st)


def test_gossip_results_do_not_depend_on_the_pass_size():
    one = chunk_states(1)  # one row per pass: many passes per quantum
    assert float(one.counters["messages_sent"]) > 0 and float(one.counters["trainings"]) > 0
    for c in (3, N):
        jax.tree.map(np.testing.assert_array_equal, chunk_states(c), one)


COPY = re.compile(r"= f32\[(\d+),8,4\]\{[^}]*\} copy\(")


def node_model_copies(text: str) -> int:
    """Copies of an [N, 8, 4] f32 array (a node model or inbox leaf 'w') in compiled HLO."""
    return sum(1 for m in COPY.finditer(text) if int(m.group(1)) == N)


@pytest.mark.parametrize("engine", ["gossip", "dwa"])
def test_chunk_updates_node_models_in_place(engine):
    aenv, genv = async_envs(1)
    cap = gossip_capacity(GSPEC, genv, 200)
    g0 = init_gossip(PARAMS, N, GSPEC, jax.random.key(0), cap)
    if engine == "gossip":
        chunk, st = make_gossip_chunk(apply, TRAIN, GSPEC, genv, 200, "vmap"), g0
    else:
        chunk = make_dwa_chunk(apply, TRAIN, ASPEC, ENG, GSPEC, DWASpec(), aenv, genv, 200, "vmap")
        st = init_dwa(init_async(PARAMS, ASPEC, ENG, N), g0)
    chunk.min_donate_bytes = 0
    text = chunk.lower(st, jax.random.key(1), 10.0).compile().as_text()
    assert node_model_copies(text) == 0


def test_bfloat16_node_models_are_never_upcast_whole():
    """XLA's CPU backend upcasts a bfloat16 scatter (and hoists converted gathers) to a float32
    copy of every node model, and copies for a whole-array bitcast; `dl.arrays` stores bfloat16
    node models as their bits and converts only rows."""
    from dataclasses import replace

    aenv, genv = async_envs(1)
    spec = replace(GSPEC, node_dtype="bfloat16")
    cap = gossip_capacity(spec, genv, 200)
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 200, "vmap")
    chunk.min_donate_bytes = 0
    st = init_gossip(PARAMS, N, spec, jax.random.key(0), cap)
    text = chunk.lower(st, jax.random.key(1), 10.0).compile().as_text()
    assert f"u16[{N},8,4]" in text  # the node models are stored as bfloat16 bits
    assert f"f32[{N},8,4]" not in text  # and never converted whole
    # nor bitcast whole: XLA's CPU backend copies for a bitcast-convert (2 copies measured)
    whole = re.compile(rf"= \w+\[{N},8,4\]\{{[^}}]*\}} bitcast-convert\(")
    assert not whole.search(text)
