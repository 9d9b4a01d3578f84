"""Messages on the wire (DESIGN.md §Semantics 3; Hegedűs et al., DAIS 2019 / JPDC 2021): a
gossip message takes its transfer time, is merged in the quantum that contains its arrival, and
carries the sender's model *at send time*; it is lost when sender or receiver is offline at any
point of the transfer. Hand-derived numbers on 2 nodes with 2 parameters.

Setup shared by the tests: quantum 1 s, period 10 s; a message is 448 bytes = 3,584 bits and
1 kbit/s = 1,024 bit/s (FedScale units), so a 1 kbit/s link takes 3584 / 1024 = 3.5 s
(3.5 quanta). Local "training" is one SGD step of lr 0.5 with weight decay 1 on a model whose
output ignores its parameters: the loss gradient is 0, so one session maps p -> p - 0.5 * p =
p / 2 and adds 1 to the age (local_steps = 1). Sessions last t_comp = 0.5 s and start at the
end of the quantum in which the node merged.
"""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from dl.algorithms.gossip import gossip_parts
from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_quantum,
)
from dl.traces.availability import from_transitions
from dl.train.local import LocalTrainSpec

MBYTES = 448  # 3,584 bits
TRAIN = LocalTrainSpec(batch_size=1, local_steps=1, lr=0.5, weight_decay=1.0)
SPEC = GossipSpec(period_s=10.0, quantum_s=1.0)


def apply(p, x):
    return jnp.zeros((x.shape[0], 2), jnp.float32)  # the loss does not depend on p


def availability(n, outages=()):
    """Everyone online from t = 0; `outages` = [(node, t_off, t_on)]."""
    node = np.array([o[0] for o in outages for _ in (0, 1)], np.int64)
    times = np.array([t for o in outages for t in o[1:]], np.float32)
    return from_transitions(node, times, np.ones(n, bool), n)


def env(up, down, outages=()):
    n = len(up)
    f = lambda v: jnp.full((n,), v, jnp.float32)  # noqa: E731
    return GossipEnv(
        x=jnp.zeros((n, 1, 1), jnp.float32),
        y=jnp.zeros((n, 1), jnp.int32),
        counts=jnp.ones((n,), jnp.int32),
        t_comp=f(0.5),
        up_kbps=jnp.asarray(up, jnp.float32),
        down_kbps=jnp.asarray(down, jnp.float32),
        power_w=f(1.0),
        e_up_j=f(0.1),
        e_down_j=f(0.1),
        nodes=availability(n, outages),
    )


def start(genv, spec, w, age, next_gossip):
    n = len(age)
    st = init_gossip(
        {"w": jnp.zeros((2,))}, n, spec, jax.random.key(0), gossip_capacity(spec, genv, MBYTES)
    )
    return st.replace(
        params={"w": jnp.asarray(w, jnp.float32)},
        age=jnp.asarray(age, jnp.float32),
        part_age=jnp.asarray(age, jnp.float32)[:, None],
        next_gossip=jnp.asarray(next_gossip, jnp.float32),
    )


def stepper(genv, spec=SPEC):
    step = make_gossip_quantum(apply, TRAIN, spec, genv, MBYTES, "vmap")
    everyone = jnp.ones(genv.counts.shape, bool)
    return jax.jit(lambda st: step(st, jax.random.key(1), everyone))


def test_a_transfer_of_3_5_quanta_merges_in_its_arrival_quantum():
    genv = env([1.0, 1.0], [1.0, 1.0])  # 3.5 s each way
    # node 0: w = [1, 2], age 1, sends at 0.2 -> arrives 3.7 (quantum 3 = [3, 4))
    # node 1: w = [3, 6], age 3, sends at 5.2 -> arrives 8.7 (quantum 8)
    st = start(genv, SPEC, [[1.0, 2.0], [3.0, 6.0]], [1.0, 3.0], [0.2, 5.2])
    step = stepper(genv)
    for q in range(3):  # quanta 0, 1, 2: the message is on the wire, nobody changes
        st = step(st)
        np.testing.assert_array_equal(st.params["w"], [[1.0, 2.0], [3.0, 6.0]], err_msg=f"q{q}")
        np.testing.assert_array_equal(st.age, [1.0, 3.0])
        assert int(st.inflight.valid.sum()) == 1 and not bool(st.training.any())
    st = step(st)  # quantum 3: node 1 merges; w_r = a_r / (a_l + a_r) = 1 / (3 + 1) = 1/4
    # [3, 6] + 1/4 ([1, 2] - [3, 6]) = [2.5, 5]; age max(3, 1) = 3
    np.testing.assert_array_equal(st.params["w"], [[1.0, 2.0], [2.5, 5.0]])
    np.testing.assert_array_equal(st.age, [1.0, 3.0])
    assert int(st.inflight.valid.sum()) == 0 and bool(st.training[1])
    assert float(st.train_start[1]) == 4.0  # trains from the end of the arrival quantum
    st = step(st)  # quantum 4: the session [4, 4.5] ends: [2.5, 5] / 2 = [1.25, 2.5], age 4
    np.testing.assert_array_equal(st.params["w"][1], [1.25, 2.5])
    assert float(st.age[1]) == 4.0
    for _ in range(3):  # quanta 5-7: node 1 sent [1.25, 2.5] (age 4) at 5.2, due at 8.7
        st = step(st)
        np.testing.assert_array_equal(st.params["w"][0], [1.0, 2.0])
    st = step(st)  # quantum 8: node 0 merges with w = 4 / (1 + 4) = 0.8
    # [1, 2] + 0.8 ([1.25, 2.5] - [1, 2]) = [1 + 0.2, 2 + 0.4] = [1.2, 2.4]; age max(1, 4) = 4
    np.testing.assert_allclose(st.params["w"][0], [1.2, 2.4], rtol=1e-6)
    assert float(st.age[0]) == 4.0
    assert float(st.counters["messages_sent"]) == 2 and float(st.counters["messages_lost"]) == 0
    assert float(st.counters["bytes_down"]) == 2 * MBYTES


def run_lost(outages):
    genv = env([1.0, 1.0], [1.0, 1.0], outages)
    # only node 0 sends (at 0.2, due at 3.7); node 1's timer is far away
    st = start(genv, SPEC, [[1.0, 2.0], [3.0, 6.0]], [1.0, 3.0], [0.2, 50.0])
    step = stepper(genv)
    for _ in range(6):
        st = step(st)
    return st


def test_a_receiver_offline_mid_transfer_loses_the_message():
    st = run_lost([(1, 2.0, 3.0)])  # node 1 offline in [2, 3), back before the arrival 3.7
    np.testing.assert_array_equal(st.params["w"], [[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_array_equal(st.age, [1.0, 3.0])
    assert float(st.counters["messages_sent"]) == 1 and float(st.counters["messages_lost"]) == 1
    assert float(st.counters["bytes_down"]) == 0 and int(st.inflight.valid.sum()) == 0


def test_a_sender_offline_mid_transfer_loses_the_message():
    st = run_lost([(0, 2.0, 3.0)])  # node 0 offline in [2, 3) while uploading
    np.testing.assert_array_equal(st.params["w"], [[1.0, 2.0], [3.0, 6.0]])
    assert float(st.counters["messages_lost"]) == 1 and float(st.counters["bytes_down"]) == 0


def test_the_payload_is_the_senders_model_at_send_time():
    # 0 -> 1: min(up0, down1) = 1 kbit/s, 3.5 s; 1 -> 0: min(1e6, 1e6), 3.5 us
    genv = env([1.0, 1e6], [1e6, 1.0])
    # node 0: [4, 8] age 1, sends at 0.2 (due 3.7); node 1: [2, 6] age 3, sends at 0.5
    st = start(genv, SPEC, [[4.0, 8.0], [2.0, 6.0]], [1.0, 3.0], [0.2, 0.5])
    step = stepper(genv)
    st = step(st)  # quantum 0: node 0 merges node 1's model, w = 3 / (1 + 3) = 3/4
    # [4, 8] + 3/4 ([2, 6] - [4, 8]) = [2.5, 6.5], age 3; trains in [1, 1.5]
    np.testing.assert_array_equal(st.params["w"][0], [2.5, 6.5])
    st = step(st)  # quantum 1: training halves it: [1.25, 3.25], age 4
    np.testing.assert_array_equal(st.params["w"][0], [1.25, 3.25])
    assert float(st.age[0]) == 4.0
    st = step(step(st))  # quantum 3: node 1 gets node 0's model AS SENT at 0.2: [4, 8], age 1
    # w = 1 / (3 + 1) = 1/4: [2, 6] + 1/4 ([4, 8] - [2, 6]) = [2.5, 6.5]; age max(3, 1) = 3
    # (the model at arrival, [1.25, 3.25] age 4, would give w = 4/7 and [1.57.., 4.57..])
    np.testing.assert_array_equal(st.params["w"][1], [2.5, 6.5])
    assert float(st.age[1]) == 3.0


def test_fast_links_merge_in_the_sending_quantum():
    genv = env([1e6, 1e6], [1e6, 1e6])  # 3.5 us
    st = start(genv, SPEC, [[1.0, 2.0], [3.0, 6.0]], [1.0, 3.0], [0.2, 50.0])
    st = stepper(genv)(st)  # quantum 0: sent at 0.2, arrived at 0.2000035, merged: [2.5, 5]
    np.testing.assert_array_equal(st.params["w"][1], [2.5, 5.0])
    assert int(st.inflight.valid.sum()) == 0


def test_capacity_bound_and_explicit_cap_overflow_is_counted():
    genv = env([1.0, 1.0], [1.0, 1.0])  # T = 3.5 s for both senders
    # messages with send < t1 and arrival >= t0 (sent, not yet delivered, before (C)):
    # proactive: ceil((3.5 + 1) / 10) = 1 per node; reactive (R = 2): sends at quantum starts in
    # [t0 - 3.5, t0], i.e. t0-3, t0-2, t0-1, t0: 2 * (floor(3.5 / 1) + 1) = 8 per node
    assert gossip_capacity(SPEC, genv, MBYTES) == 2
    from dl.rules.token_account import TokenSpec

    tok = GossipSpec(period_s=10.0, quantum_s=1.0, token=TokenSpec(flow="randomized"))
    assert gossip_capacity(tok, genv, MBYTES) == 2 * (1 + 8)
    # a period of 4 s: ceil((3.5 + 1) / 4) = 2 proactive messages per node
    assert gossip_capacity(GossipSpec(period_s=4.0, quantum_s=1.0), genv, MBYTES) == 2 * 2
    # an explicit cap of 1 with both nodes sending in quantum 0: one message does not fit
    cap = GossipSpec(period_s=10.0, quantum_s=1.0, inflight_cap=1)
    # no transfer is shorter than a quantum (3.5 s > 1 s): no extra room for same-quantum ones
    assert gossip_capacity(cap, genv, MBYTES) == 1
    st = start(genv, cap, [[1.0, 2.0], [3.0, 6.0]], [1.0, 3.0], [0.2, 0.4])
    st = stepper(genv, cap)(st)
    assert float(st.counters["messages_overflow"]) == 1
    assert float(st.counters["messages_lost"]) == 1 and int(st.inflight.valid.sum()) == 1


def test_the_bound_counts_only_nodes_online_in_the_busiest_quantum():
    from dl.engine.inflight import busiest_quantum
    from dl.traces.availability import from_transitions

    # q = 1 s. Node 0 online [0, 5), node 1 [10, 20), node 2 [4.5, 12). Widened by 1e-3 s:
    # node 0 meets quanta 0..5, node 1 9..20, node 2 4..12. Quanta 4-5 hold nodes 0, 2 and
    # 9-12 nodes 1, 2; none holds all three: max weight 2 + 3 = 5 (weights 2, 1, 3), not 6
    av = from_transitions(
        np.array([0, 1, 1, 2, 2]),
        np.float32([5.0, 10.0, 20.0, 4.5, 12.0]),
        np.array([True, False, False]),
        3,
    )
    assert busiest_quantum(av, np.array([2.0, 1.0, 3.0]), 1.0) == 5.0
    # a node offline all the time adds nothing; one always online adds its weight everywhere
    never = from_transitions(np.array([], int), np.float32([]), np.array([False, True]), 2)
    assert busiest_quantum(never, np.array([7.0, 1.0]), 1.0) == 1.0


def test_explicit_cap_counts_only_messages_left_on_the_wire():
    """Three nodes, cap 1. Node 0 -> slow link (3.5 s, on the wire after quantum 0); nodes 1
    and 2 have fast uplinks but node 0's downlink is slow: the only fast pairs are 1 <-> 2.
    Same-quantum deliveries never count against the cap: the buffer gets one extra slot per
    sender whose fastest transfer is under a quantum (nodes 1, 2) -> capacity 1 + 2 = 3."""
    genv = env([1.0, 1e6, 1e6], [1.0, 1e6, 1e6])
    cap = GossipSpec(period_s=10.0, quantum_s=1.0, inflight_cap=1, topology="kregular", degree=2)
    assert gossip_capacity(cap, genv, MBYTES) == 1 + 2
    # everyone sends in quantum 0; at most one message may stay on the wire after it
    st = start(genv, cap, np.zeros((3, 2)), np.zeros(3), [0.1, 0.2, 0.3])
    st = stepper(genv, cap)(st)
    c = {k: float(v) for k, v in st.counters.items()}
    delivered = c["bytes_down"] / MBYTES  # the fast 1 <-> 2 messages, merged in quantum 0
    # node 0's message is first in message order (sender id): it takes the cap's one place;
    # the other wire messages (1 or 2 -> 0) overflow: 3 sent = delivered + 1 on wire + overflow
    assert c["messages_sent"] == 3 and delivered < 2  # this seed: someone picks node 0
    assert int(st.inflight.valid.sum()) == 1 and int(st.inflight.sender[st.inflight.valid][0]) == 0
    assert c["messages_overflow"] == 3 - delivered - 1
    assert c["messages_lost"] == c["messages_overflow"]
    # the cap never touches the messages merged in their sending quantum: same as uncapped
    free = GossipSpec(period_s=10.0, quantum_s=1.0, topology="kregular", degree=2)
    st2 = stepper(genv, free)(start(genv, free, np.zeros((3, 2)), np.zeros(3), [0.1, 0.2, 0.3]))
    assert float(st2.counters["bytes_down"]) / MBYTES == delivered >= 1


def edges(seed):
    """(sender, receiver) pairs seen on the wire over 40 quanta of a k-regular overlay."""
    n = 8
    genv = env([2.0] * n, [2.0] * n)  # 1.75 s: every message spends a quantum boundary in flight
    spec = GossipSpec(
        period_s=1.0, quantum_s=1.0, topology="kregular", degree=2, seed=seed, train=False
    )
    st = start(genv, spec, np.zeros((n, 2)), np.zeros(n), np.full(n, 0.5))
    step, seen = stepper(genv, spec), set()
    for _ in range(40):
        st = step(st)
        b = st.inflight
        v = np.asarray(b.valid)
        seen |= set(zip(np.asarray(b.sender)[v].tolist(), np.asarray(b.receiver)[v].tolist()))
    return seen


def test_run_seed_draws_the_k_regular_overlay():
    e0, e0b, e1 = edges(0), edges(0), edges(1)
    assert e0 == e0b
    assert e0 != e1
    for e in (e0, e1):  # every node keeps exactly its k = 2 out-neighbours
        assert sorted(s for s, _ in e) == sorted(list(range(8)) * 2)


def test_runner_passes_the_run_seed_to_the_gossip_spec():
    genv = env([1.0, 1.0], [1.0, 1.0])
    energy = SimpleNamespace(
        t_comp=genv.t_comp, power_w=genv.power_w, e_up_j=genv.e_up_j, e_down_j=genv.e_down_j
    )
    energy.message_scaled = lambda frac: energy  # full messages: nothing to scale
    b = SimpleNamespace(
        env=SimpleNamespace(x=genv.x, y=genv.y, counts=genv.counts),
        energy=energy,
        profiles=SimpleNamespace(up_kbps=genv.up_kbps, down_kbps=genv.down_kbps),
        availability=genv.nodes,
    )
    for seed in (3, 7):
        spec, _ = gossip_parts({"sim": {}, "seed": seed}, {"name": "gossip"}, b)
        assert spec.seed == seed
