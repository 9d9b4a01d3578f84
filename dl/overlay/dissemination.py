"""Task dissemination by gossip: push, pull, push-pull anti-entropy and push rumor mongering.

Vectorized over nodes and tasks: the whole overlay's knowledge is one `[N, T]` pytree, a round
is one gather (pull side) and one scatter-max (push side, an OR over all senders that chose the
same partner), and nothing loops over nodes or tasks in Python. Rounds are synchronous: every
exchange of a round reads the knowledge of the *start* of the round.

- Anti-entropy (Demers et al., "Epidemic algorithms for replicated database maintenance",
  PODC 1987): each online node contacts one partner per round and they reconcile all tasks
  (`push`: initiator -> partner; `pull`: partner -> initiator; `push_pull`: both ways).
  On the complete graph push informs everyone in (1 + o(1))(log2 N + ln N) rounds
  (Frieze & Grimmett 1985; Pittel 1987; Doerr & Fouz), push-pull in log3 N + O(log log N)
  (Karp, Schindelhauer, Shenker & Vöcking, FOCS 2000).
- Rumor mongering (Demers et al., push, feedback + counter): a node pushes its *hot* tasks;
  when the partner already knew a task the sender's counter for it grows by one and after `k`
  such useless contacts the task stops being hot at the sender. A node that learns a task by
  rumor makes it hot. Residue s and traffic m obey s ~ exp(-m). Demers's Table 1 (n = 1000)
  is reproduced within sampling error by synchronous rounds in which a useful push resets
  the counter (k counts consecutive useless contacts; the default), and not by a cumulative
  counter (see `gossip_round`).

Conventions (counted per node, cumulative: `Knowledge.sent` messages, `Knowledge.carried`
task records inside them, so bytes per node = sent * header + carried * record size):
- Offline nodes neither send nor receive. A message to an offline partner is sent (counted)
  and lost; a pull request to an offline partner gets no reply; a lost rumor push gives the
  sender no feedback (its counter does not move).
- `push` / `rumor`: a node sends one message per round if it has something to push (a known
  / hot task); the message carries every known / hot task. `pull` / `push_pull`: every online
  node with a partner sends one request (a digest), an online partner sends one reply; thanks
  to the digests only tasks the receiver lacks are carried.
- Only rumor mongering and `publish` make a task hot; anti-entropy spreads knowledge silently.
"""

from functools import partial

import jax
import jax.numpy as jnp
from flax import struct
from jax import Array

from dl.errors import ConfigError
from dl.overlay.counting import count_cols, count_rows
from dl.overlay.partners import delivered, online_index, uniform_partners

MODES = ("push", "pull", "push_pull", "rumor")


@struct.dataclass
class Knowledge:
    """What each node knows about each task (leading node axis)."""

    knows: Array  # [N, T] bool   node knows the task
    hot: Array  # [N, T] bool   task is a hot rumor at the node (rumor mode pushes it)
    counter: Array  # [N, T] int8   useless pushes of the task while hot (feedback counter)
    informed_at: Array  # [N, T] f32    `now` of the round the node learned the task; inf if not
    sent: Array  # [N] i32      messages sent by the node, cumulative
    carried: Array  # [N] i32      task records sent by the node, cumulative

    @property
    def num_nodes(self) -> int:
        return self.knows.shape[0]

    @property
    def num_tasks(self) -> int:
        return self.knows.shape[1]


def init_knowledge(num_nodes: int, num_tasks: int) -> Knowledge:
    """Nobody knows anything yet."""
    if num_nodes < 1 or num_tasks < 1:
        raise ConfigError(f"overlay needs >= 1 node and >= 1 task (got {num_nodes}, {num_tasks})")
    shape = (num_nodes, num_tasks)
    return Knowledge(
        knows=jnp.zeros(shape, bool),
        hot=jnp.zeros(shape, bool),
        counter=jnp.zeros(shape, jnp.int8),
        informed_at=jnp.full(shape, jnp.inf, jnp.float32),
        sent=jnp.zeros((num_nodes,), jnp.int32),
        carried=jnp.zeros((num_nodes,), jnp.int32),
    )


@jax.jit
def publish(state: Knowledge, origin: Array, now: Array | float) -> Knowledge:
    """Task `t` appears at node `origin[t]` (`[T] int32`, `-1`: not now) as a fresh hot rumor."""
    n, t = state.knows.shape
    row = jnp.where(origin >= 0, origin, n).astype(jnp.int32)  # n: out of bounds, dropped
    col = jnp.arange(t)
    now = jnp.asarray(now, jnp.float32)
    return state.replace(
        knows=state.knows.at[row, col].set(True, mode="drop"),
        hot=state.hot.at[row, col].set(True, mode="drop"),
        counter=state.counter.at[row, col].set(0, mode="drop"),
        informed_at=state.informed_at.at[row, col].min(now, mode="drop"),
    )


def _or_into(base: Array, payload: Array, to: Array) -> Array:
    """`base[j] | OR of payload[i] over i with to[i] == j` (`to[i] == N`: dropped)."""
    return base.at[to].max(payload, mode="drop")


def _replies(to: Array, n: int) -> Array:
    """`[N] i32`: how many requests each node answers this round."""
    return jnp.zeros((n,), jnp.int32).at[to].add(1, mode="drop")


def _exchange(
    mode: str,
    knows: Array,
    hot: Array,
    counter: Array,
    partner: Array,
    online: Array,
    k: Array | int,
    consecutive: bool | Array,
) -> tuple[Array, Array, Array, Array, Array]:
    """One mode's exchange: (knows, hot, counter, sent [N], carried [N]) after it."""
    n = knows.shape[0]
    live = online & (partner >= 0)  # [N] initiates a contact
    ok = delivered(partner, online)  # [N] ... and the partner is online
    to = jnp.where(ok, partner, n)  # [N] scatter target, n = lost
    okc = ok[:, None]
    theirs = knows[jnp.maximum(partner, 0)]  # [N, T] the partner's knowledge (gather)

    if mode == "push":
        send = live & knows.any(axis=1)
        return (
            _or_into(knows, knows & okc, to),
            hot,
            counter,
            send.astype(jnp.int32),
            count_rows(knows & send[:, None]),
        )
    if mode in ("pull", "push_pull"):
        pulled = theirs & okc  # the partner's reply
        new = knows | pulled
        replied = count_rows(pulled & ~knows)  # records in i's reply, sent by its partner
        carried = jnp.zeros((n,), jnp.int32).at[to].add(replied, mode="drop")
        if mode == "push_pull":
            mine = knows & okc
            new = _or_into(new, mine, to)
            carried = carried + count_rows(mine & ~pulled)
        sent = live.astype(jnp.int32) + _replies(to, n)
        return new, hot, counter, sent, carried
    # rumor: push hot tasks; feedback when the partner already knew
    records = count_rows(hot)
    send = live & (records > 0)
    payload = hot & okc
    new = _or_into(knows, payload, to)
    useless = payload & theirs
    counter = counter + useless.astype(jnp.int8)
    counter = jnp.where(payload & ~theirs & consecutive, jnp.int8(0), counter)  # reset
    # nodes that do not know a task always have counter 0 there, so new rumors start at 0
    carried = jnp.where(send, records, 0)  # lost pushes were sent too
    hot = (hot & (counter < k)) | (new & ~knows)
    return new, hot, counter, send.astype(jnp.int32), carried


@partial(jax.jit, static_argnames=("mode",))
def gossip_round(
    state: Knowledge,
    key: Array,
    online: Array,
    now: Array | float,
    k: Array | int = 3,
    *,
    mode: str | tuple[str, ...] = "push_pull",
    partner: Array | None = None,
    consecutive: bool | Array = True,
) -> Knowledge:
    """One synchronous gossip round over all nodes and tasks.

    Args:
      state: the overlay's knowledge.
      key: PRNG key (only used to draw partners when `partner` is None).
      online: `[N] bool`, who is online this round.
      now: round index or virtual time stamped into `informed_at` (pass a float: an int
        traces a second version).
      k: rumor-mongering counter (`rumor` mode), traced, so changing it does not recompile.
      mode: one of `push`, `pull`, `push_pull`, `rumor` (static), or a tuple of them run one
        after the other in the same round, each with its own partner draw (the second sees
        what the first taught), sharing one `informed_at` update: ("rumor", "push_pull") is
        cheaper than two calls.
      partner: `[N] int32` partner per node (`-1`: none), from any topology or peer sampler,
        used by every mode; None draws a uniform online partner (complete graph).
      consecutive: `rumor` only (traced). True: the counter counts *consecutive* useless
        pushes (a useful push resets it), which reproduces Demers et al.'s Table 1
        (residue 0.176 / 0.037 / 0.011 for k = 1 / 2 / 3 at N = 1000); False: it counts all
        useless pushes (k = 2, 3 then leave 0.048 / 0.016).
    """
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    for m in modes:
        if m not in MODES:
            raise ConfigError(
                f"unknown overlay gossip mode '{m}' (choose from: {', '.join(MODES)})"
            )
    keys = [key] if len(modes) == 1 else list(jax.random.split(key, len(modes)))
    knows, hot, counter = state.knows, state.hot, state.counter
    sent, carried = state.sent, state.carried
    index = online_index(online) if partner is None else None
    for m, key_m in zip(modes, keys, strict=True):
        p = uniform_partners(key_m, online, index) if partner is None else partner.astype(jnp.int32)
        knows, hot, counter, sent_m, carried_m = _exchange(
            m, knows, hot, counter, p, online, k, consecutive
        )
        sent, carried = sent + sent_m, carried + carried_m
    newly = knows & ~state.knows
    now = jnp.asarray(now, jnp.float32)
    return state.replace(
        knows=knows,
        hot=hot,
        counter=counter,
        informed_at=jnp.where(newly, now, state.informed_at),
        sent=sent,
        carried=carried,
    )


def coverage(state: Knowledge) -> Array:
    """`[T] f32`: fraction of nodes that know each task."""
    return count_cols(state.knows).astype(jnp.float32) / state.num_nodes


def residue(state: Knowledge) -> Array:
    """`[T] f32`: fraction of nodes that never heard of each task (Demers's s)."""
    return 1.0 - coverage(state)


def traffic(state: Knowledge) -> Array:
    """`[] f32`: task records sent per node and task (Demers's m when there is one task)."""
    return state.carried.sum(dtype=jnp.float32) / (state.num_nodes * state.num_tasks)


def all_informed_at(state: Knowledge) -> Array:
    """`[T] f32`: when the last node learned each task (inf while someone does not know)."""
    return state.informed_at.max(axis=0)
