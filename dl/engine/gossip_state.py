"""Gossip-learning state, spec and environment (Hegedűs et al., DAIS 2019 / JPDC 2021): the
named pytrees the engine (`dl.engine.gossip_clock`) steps, and the host-side sizing of the
in-flight buffer (`dl.engine.inflight`)."""

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dl import rng
from dl.arrays import store, store_tree
from dl.devices.energy_env import TRAFFIC_COUNTERS
from dl.engine.inflight import InFlight, empty_inflight, inflight_bound, same_quantum_bound
from dl.errors import ConfigError
from dl.network.cyclon import init_cyclon
from dl.rules.gossip_merge import MergeSpec
from dl.rules.token_account import TokenSpec
from dl.traces.availability import Availability

COUNTERS = TRAFFIC_COUNTERS + (
    "messages_sent",
    "messages_lost",
    "messages_overflow",  # lost because the in-flight buffer was full (explicit inflight_cap)
    "trainings",
    "trainings_lost",
    "trainings_deferred",
    "inbox_overflow",  # queued models lost: no free row in the inbox pool (dl.engine.inbox)
)


@dataclass(frozen=True)
class GossipSpec:
    period_s: float = 10.0  # gossip period (Delta_g)
    quantum_s: float = 1.0
    max_trainings: int = 64  # training sessions completed per quantum (capacity)
    merge: MergeSpec = field(default_factory=MergeSpec)
    sample_frac: float = 1.0  # model subsampling: fraction of coordinates per message
    topology: str = "uniform"  # [uniform, kregular, kregular_dynamic, cyclon]
    degree: int = 20  # k for k-regular overlays; view size c for cyclon
    shuffle_len: int = 5  # cyclon: entries exchanged per shuffle (one shuffle per period)
    queue: str = "last"  # [last, all]: models received while training
    partitions: int = 1  # > 1: partitioned subsampling, one partition per message, own ages
    token: TokenSpec = field(default_factory=TokenSpec)
    train: bool = True
    node_dtype: str = "float32"  # [float32, bfloat16]: storage of node models (training in f32)
    seed: int = 0  # run seed: draws the fixed k-regular overlay
    inflight_cap: int = 0  # messages on the wire after a quantum; 0: a bound that cannot overflow
    inbox_cap: int = 0  # rows of the inbox pool; 0: the bound of dl.engine.inbox.pool_bound

    def validate(self) -> None:
        self.merge.validate()
        if self.node_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"sim.node_dtype must be float32 or bfloat16, got {self.node_dtype}")
        if not 0 < self.quantum_s <= self.period_s:
            raise ConfigError("need 0 < algorithm.quantum_s <= algorithm.period_s")
        if not 0.0 < self.sample_frac <= 1.0:
            raise ConfigError(f"algorithm.sample_frac must be in (0, 1], got {self.sample_frac}")
        if self.max_trainings < 1:
            raise ConfigError("algorithm.max_trainings must be >= 1")
        if self.queue not in ("last", "all"):
            raise ConfigError(f"unknown algorithm.queue '{self.queue}' (last, all)")
        if self.partitions < 1 or (self.partitions > 1 and self.sample_frac < 1.0):
            raise ConfigError("algorithm.partitions must be >= 1, and > 1 needs sample_frac=1")
        if self.queue == "all" and (self.sample_frac < 1.0 or self.partitions > 1):
            raise ConfigError("algorithm.queue=all needs no subsampling (sample_frac=1)")
        if self.inflight_cap < 0:
            raise ConfigError("algorithm.inflight_cap must be >= 0 (0: automatic bound)")
        if self.inbox_cap < 0:
            raise ConfigError("algorithm.inbox_cap must be >= 0 (0: automatic bound)")
        self.token.validate()

    @property
    def n_slots(self) -> int:
        """Send slots per node and quantum: the periodic send + the token account's reactive."""
        return 1 + (self.token.max_reactive if self.token.flow != "proactive" else 0)


@struct.dataclass
class GossipEnv:
    """Per-node arrays (node axis first) and availability: an argument of the jitted chunk."""

    x: Any  # [N, M, ...]
    y: Any  # [N, M, ...]
    counts: Any  # [N] i32
    t_comp: Any  # [N] f32 s per training session
    up_kbps: Any  # [N] f32
    down_kbps: Any  # [N] f32
    power_w: Any  # [N] f32
    e_up_j: Any  # [N] f32 radio J per message sent (EnergyEnv.message_scaled)
    e_down_j: Any  # [N] f32 radio J per message received
    nodes: Availability


@struct.dataclass
class GossipState:
    params: Any  # pytree [N, ...] node models ([1, ...], the initial model, if not spec.train)
    age: jnp.ndarray  # [N] f32 SGD steps along each model's lineage
    training: jnp.ndarray  # [N] bool a local-training session is running
    train_start: jnp.ndarray  # [N] f32
    train_end: jnp.ndarray  # [N] f32 due time: end of training or going offline
    train_ok: jnp.ndarray  # [N] bool the node stays online until the session ends
    train_q: jnp.ndarray  # [N] i32 quantum the session started (seeds its key)
    inbox: Any  # pytree [P, ...] the inbox pool: last model received while training
    inbox_slot: jnp.ndarray  # [N] i32 pool row of the node's inbox; P: none (dl.engine.inbox)
    inbox_age: jnp.ndarray  # [N] f32
    inbox_part: jnp.ndarray  # [N] i32 partition the inbox message carried (partitioned mode)
    part_age: jnp.ndarray  # [N, P] f32 per-partition ages (P = 1: equals age)
    inbox_mask: Any  # pytree [P, ...] bool coordinates the inbox message carried (or None)
    has_inbox: jnp.ndarray  # [N] bool
    next_gossip: jnp.ndarray  # [N] f32 next send time
    dirty: jnp.ndarray  # [N] bool merged or trained since last synced with a server
    cyclon: Any  # CyclonState partial views (topology=cyclon), else None
    tokens: jnp.ndarray  # [N] f32 token-account balance
    react: jnp.ndarray  # [N] i32 reactive sends due next quantum
    inflight: InFlight  # [K] messages on the wire (sent, not yet arrived)
    quantum: jnp.ndarray  # [] i32
    counters: dict  # name -> [] f32, drained by the host


def message_bits(spec: GossipSpec, model_bytes: int) -> float:
    """Bits of one message: the model, times the subsampled fraction or 1 / partitions."""
    return model_bytes * 8.0 * spec.sample_frac / spec.partitions


def gossip_capacity(spec: GossipSpec, env: GossipEnv, model_bytes: int) -> int:
    """In-flight buffer size K: the bound of `inflight_bound`, or an explicit `inflight_cap` plus
    room for the messages delivered in the quantum they are sent in (`same_quantum_bound`)."""
    bits = message_bits(spec, model_bytes)
    if spec.inflight_cap > 0:
        extra = same_quantum_bound(env.up_kbps, env.down_kbps, bits, spec.quantum_s, spec.n_slots)
        return spec.inflight_cap + extra
    return inflight_bound(
        env.up_kbps,
        env.down_kbps,
        bits,
        spec.quantum_s,
        spec.period_s,
        spec.n_slots - 1,
        nodes=env.nodes,
    )


def init_gossip(
    params, n: int, spec: GossipSpec, key, capacity: int | None = None, pool: int | None = None
) -> GossipState:
    """Initial state; `capacity` = `gossip_capacity(spec, env, model_bytes)` (None: use
    `spec.inflight_cap`; `make_gossip_chunk` grows a too-small buffer, the hybrid cannot);
    `pool` = rows of the inbox pool (`dl.engine.inbox.pool_size`; None: one per node).
    Every field has its own buffer (a chunk donates its state). With `spec.train=False` no
    per-node model is stored: node models, inbox and masks are [1, ...] (the initial model,
    which no node changes, broadcastable to [N, ...])."""
    dt = spec.node_dtype  # bfloat16 models are stored as their bits (`dl.arrays`)
    p = (n if pool is None else int(pool)) if spec.train else 1

    def stack(m):
        return jax.tree.map(lambda x: jnp.broadcast_to(store(x, dt), (m,) + x.shape), params)

    def zf():
        return jnp.zeros((n,), jnp.float32)

    def zb():
        return jnp.zeros((n,), bool)

    m = n if spec.train else 1  # system-only: the initial model, broadcastable to [N, ...]
    mask = None
    if spec.sample_frac < 1.0 or spec.partitions > 1:
        mask = jax.tree.map(lambda x: jnp.zeros(x.shape, bool), stack(p))
    cap = spec.inflight_cap if capacity is None else capacity
    one = store_tree(params, dt)
    return GossipState(
        params=stack(m),
        age=zf(),
        training=zb(),
        train_start=zf(),
        train_end=jnp.full((n,), jnp.inf, jnp.float32),
        train_ok=zb(),
        train_q=jnp.zeros((n,), jnp.int32),
        inbox=stack(p),
        inbox_slot=jnp.full((n,), p, jnp.int32),
        inbox_age=zf(),
        inbox_part=jnp.zeros((n,), jnp.int32),
        part_age=jnp.zeros((n, spec.partitions), jnp.float32),
        inbox_mask=mask,
        has_inbox=zb(),
        next_gossip=jax.random.uniform(key, (n,), jnp.float32) * spec.period_s,
        dirty=zb(),
        cyclon=(
            init_cyclon(jax.random.fold_in(key, rng.CYCLON_INIT), n, spec.degree)
            if spec.topology == "cyclon"
            else None
        ),
        tokens=zf(),
        react=jnp.zeros((n,), jnp.int32),
        inflight=empty_inflight(one, max(cap, 1), spec.train),
        quantum=jnp.zeros((), jnp.int32),
        counters={k: jnp.zeros((), jnp.float32) for k in COUNTERS},
    )
