"""Named mutations of the rule code for `scripts/mutation_check.py` (issue 11).

Each entry: `name`, `file`, the exact `old` snippet (present exactly once), its `new`
replacement, the fast `tests` that must catch it, and `why` (the rule it breaks). The first six
are the breakages an independent review found surviving every test.
"""

ASYNC = ["tests/test_golden_async.py"]
DWA = ["tests/test_golden_dwa.py", "tests/test_gossip_dwa.py"]
GOSSIP = ["tests/test_golden_gossip.py", "tests/test_gossip_inflight.py"]
FEDAVG = ["tests/test_golden_fedavg.py"]
ENERGY = ["tests/test_golden_energy.py", "tests/test_energy.py"]
TOPO = ["tests/test_golden_topology.py", "tests/test_cyclon.py"]
SERVER = ["tests/test_golden_server.py"]


def m(name, file, old, new, tests, why):
    return dict(name=name, file=file, old=old, new=new, tests=tests, why=why)


MUTATIONS = [
    # --- the six breakages of the review -------------------------------------------------
    m(
        "dwa_lam_zero",
        "dl/rules/dwa.py",
        "jnp.minimum(dspec.lam_max, aspec.alpha * s * r**dspec.nu)",
        "0.0 * jnp.minimum(dspec.lam_max, aspec.alpha * s * r**dspec.nu)",
        DWA,
        "DWA: the server never mixes a gossip upload (lambda := 0)",
    ),
    m(
        "staleness_weight_one",
        "dl/engine/async_server.py",
        "s = staleness_weight(spec.staleness, k, spec.stale_a, spec.stale_b)",
        "s = jnp.float32(1.0)",
        ASYNC,
        "FedAsync/FedBuff: staleness weight := 1",
    ),
    m(
        "poly_exponent_sign",
        "dl/rules/staleness.py",
        "return (k + 1.0) ** (-a)",
        "return (k + 1.0) ** (a)",
        ASYNC,
        "polynomial staleness: exponent sign flipped",
    ),
    m(
        "fedavg_wasted_energy",
        "dl/engine/rounds.py",
        '"energy_wasted_j": acc["energy_wasted_j"] + wasted.sum(),',
        '"energy_wasted_j": acc["energy_wasted_j"],',
        FEDAVG,
        "FedAvg: stragglers' wasted energy not counted",
    ),
    m(
        "kregular_uniform",
        "dl/network/peers.py",
        'if topology == "uniform":',
        'if topology in ("uniform", "kregular"):',
        TOPO,
        "k-regular topology replaced by uniform peers",
    ),
    m(
        "merge_weight_reversed",
        "dl/rules/gossip_merge.py",
        "w = jnp.where(total > 0, a_r / jnp.where(total > 0, total, 1.0), 0.5)",
        "w = jnp.where(total > 0, a_l / jnp.where(total > 0, total, 1.0), 0.5)",
        GOSSIP,
        "gossip merge weight reversed (a_l / (a_l + a_r))",
    ),
    # --- async server ---------------------------------------------------------------------
    m(
        "staleness_off_by_one",
        "dl/engine/async_server.py",
        "k = st.version - tau",
        "k = st.version - tau + 1",
        ASYNC,
        "staleness k = t - tau off by one",
    ),
    m(
        "hinge_b_off_by_one",
        "dl/rules/staleness.py",
        "jnp.where(k <= b, 1.0, 1.0 / (a * (k - b) + 1.0))",
        "jnp.where(k <= b - 1, 1.0, 1.0 / (a * (k - b + 1) + 1.0))",
        ASYNC,
        "hinge staleness: the knee b shifted by one (k <= b is equivalent to k < b at k = b)",
    ),
    m(
        "max_staleness_off_by_one",
        "dl/engine/async_server.py",
        "(k <= spec.max_staleness)",
        "(k < spec.max_staleness)",
        ASYNC,
        "max_staleness drops uploads with k == max_staleness",
    ),
    m(
        "fedasync_mix_swapped",
        "dl/rules/fedasync.py",
        "(1.0 - a) * x + a * y",
        "(1.0 - a) * y + a * x",
        ASYNC,
        "FedAsync mixes the server model with weight alpha_t instead of the upload",
    ),
    m(
        "fedbuff_k_ignored",
        "dl/rules/fedbuff.py",
        "flush = count >= spec.buffer_k",
        "flush = count >= 1",
        ASYNC,
        "FedBuff flushes every upload (K ignored)",
    ),
    m(
        "fedbuff_server_lr_ignored",
        "dl/rules/fedbuff.py",
        "scale = spec.server_lr / spec.buffer_k",
        "scale = 1.0 / spec.buffer_k",
        ASYNC,
        "FedBuff server learning rate ignored",
    ),
    # --- DWA ------------------------------------------------------------------------------
    m(
        "dwa_lam_max_ignored",
        "dl/rules/dwa.py",
        "jnp.minimum(dspec.lam_max, aspec.alpha * s * r**dspec.nu)",
        "jnp.minimum(1e9, aspec.alpha * s * r**dspec.nu)",
        DWA,
        "DWA: lam_max cap ignored",
    ),
    m(
        "dwa_nu_ignored",
        "dl/rules/dwa.py",
        "aspec.alpha * s * r**dspec.nu",
        "aspec.alpha * s * r",
        DWA,
        "DWA: age-boost exponent nu ignored (nu := 1)",
    ),
    m(
        "dwa_age_cap_ignored",
        "dl/rules/dwa.py",
        "a_y = jnp.minimum(a_y, a_s + dspec.age_cap_steps)",
        "a_y = a_y",
        DWA,
        "DWA: claimed ages not capped at a_s + age_cap_steps",
    ),
    # --- gossip ---------------------------------------------------------------------------
    m(
        "age_rule_min",
        "dl/rules/gossip_merge.py",
        "return jnp.maximum(a_l, a_r)",
        "return jnp.minimum(a_l, a_r)",
        GOSSIP,
        "merged age = min instead of max",
    ),
    m(
        "weighted_age_swapped",
        "dl/rules/gossip_merge.py",
        "return (1.0 - w) * a_l + w * a_r",
        "return w * a_l + (1.0 - w) * a_r",
        GOSSIP,
        "weighted age rule with the weights swapped",
    ),
    m(
        "limited_merge_off",
        "dl/rules/gossip_merge.py",
        "w = jnp.where(a_l > a_r + spec.limit, 0.0, jnp.where(a_r > a_l + spec.limit, 1.0, w))",
        "w = w",
        GOSSIP,
        "limited merging threshold L ignored",
    ),
    m(
        "no_merge_merges",
        "dl/rules/gossip_merge.py",
        'if spec.rule == "none":\n        return jnp.ones_like(w)',
        'if spec.rule == "none":\n        return w',
        GOSSIP,
        "no-merge (random walk) averages instead of replacing",
    ),
    m(
        "subsample_mask_ignored",
        "dl/rules/gossip_merge.py",
        "return out if m is None else jnp.where(m, out, a)",
        "return out",
        GOSSIP,
        "subsampled merge moves coordinates the message did not carry",
    ),
    m(
        "token_proactive_shift",
        "dl/rules/token_account.py",
        "mid = (a - big_a + 1.0) / (c - big_a + 1.0)",
        "mid = (a - big_a) / (c - big_a + 1.0)",
        GOSSIP,
        "token account PROACTIVE(a) off by one token",
    ),
    m(
        "token_reactive_capacity",
        "dl/rules/token_account.py",
        "x = jnp.maximum(a, 0.0) / spec.reactivity",
        "x = jnp.maximum(a, 0.0) / spec.capacity",
        GOSSIP,
        "token account REACTIVE divides by C instead of A",
    ),
    # --- FedAvg, energy -------------------------------------------------------------------
    m(
        "fedavg_fastest_not_kth",
        "dl/engine/rounds.py",
        "n_ok > 0, jnp.max(jnp.where(chosen_ok, chosen_t, 0.0)), spec.idle_wait_s",
        "n_ok > 0, jnp.min(jnp.where(chosen_ok, chosen_t, jnp.inf)), spec.idle_wait_s",
        FEDAVG,
        "FedAvg round lasts until the fastest, not the K-th fastest, client",
    ),
    m(
        "fedavg_no_overcommit",
        "dl/engine/rounds.py",
        "s = min(n, math.ceil(spec.overcommit * k - 1e-9))",
        "s = min(n, k)",
        FEDAVG,
        "FedAvg samples K instead of ceil(1.3 K) clients",
    ),
    m(
        "wifi_alpha_up",
        "dl/devices/energy.py",
        "WIFI = RadioModel(alpha_up=283.17,",
        "WIFI = RadioModel(alpha_up=283.71,",
        ENERGY,
        "a Huang et al. 2012 WiFi coefficient changed (283.17 -> 283.71)",
    ),
    # --- semantic fixes of issue 11 (each must stay fixed) -------------------------------
    m(
        "gossip_merge_at_send",
        "dl/engine/gossip_clock.py",
        "due = buf.valid & (arrive < t1)",
        "due = buf.valid",
        GOSSIP,
        "gossip messages merged in the quantum they are sent, not when they arrive",
    ),
    m(
        "gossip_receiver_offline_ignored",
        "dl/engine/gossip_clock.py",
        "& online_during(rows(env.nodes, r), ts, arrive)",
        "",
        GOSSIP,
        "a receiver that goes offline mid-transfer still gets the message",
    ),
    m(
        "peer_seed_ignored",
        "dl/engine/gossip_clock.py",
        "make_peer_sampler(spec.topology, n, spec.degree, spec.seed)",
        "make_peer_sampler(spec.topology, n, spec.degree, 0)",
        GOSSIP + TOPO,
        "every run seed uses the same k-regular graph",
    ),
    m(
        "fedavg_upload_time_uncompressed",
        "dl/engine/rounds.py",
        "t_client = t_client - (1.0 - spec.upload_frac) * energy.t_up",
        "t_client = t_client",
        FEDAVG,
        "FL upload time ignores the upload fraction",
    ),
    m(
        "staleness_mean_from_clipped_hist",
        "dl/engine/async_server.py",
        "stale_sum = st.stale_sum + jnp.where(take, k, 0)",
        "stale_sum = st.stale_sum + jnp.where(take, jnp.clip(k, 0, spec.hist_bins - 1), 0)",
        ASYNC,
        "staleness mean computed from the clipped histogram",
    ),
    m(
        "periodic_phase_ignored",
        "dl/devices/server.py",
        'phase = float(cfg.get("phase_s", 0.0)) % period',
        "phase = 0.0",
        SERVER,
        "periodic server outage: phase ignored",
    ),
    # --- fixes found by the golden tests ---------------------------------------------------
    m(
        "lost_upload_not_trained",
        "dl/engine/async_clock.py",
        "finished.any(), work,",
        "reach.any(), work,",
        DWA,
        "a session whose upload is lost is not trained (yet its age grows by H)",
    ),
    m(
        "dropped_upload_ages_server",
        "dl/engine/hybrid.py",
        'jnp.where(info["taken"], new_age, 0.0)',
        'jnp.where(info["reach"], new_age, 0.0)',
        DWA,
        "an upload dropped for max_staleness still raises the DWA server age",
    ),
    m(
        "nan_upload_leaks",
        "dl/rules/fedasync.py",
        "lambda x, y: jnp.where(take, (1.0 - a) * x + a * y, x), st.params, model",
        "lambda x, y: (1.0 - a) * x + a * y, st.params, model",
        ASYNC,
        "a dropped diverged (NaN) upload poisons the server model (0 * NaN = NaN)",
    ),
    m(
        "gossip_message_energy_scales_tail",
        "dl/devices/energy_env.py",
        "e_down_j=(self.e_down_j - b) * frac + b,",
        "e_down_j=self.e_down_j * frac,",
        ENERGY,
        "a subsampled gossip message pays only a fraction of the LTE tail",
    ),
    # --- issue 17: the engines' row-sparse work and the server's draw -----------------------
    m(
        "row_passes_floor",
        "dl/engine/rows.py",
        "(count + c - 1) // c, one, carry",
        "count // c, one, carry",
        ["tests/test_rows.py"],
        "row-sparse updates skip the last partial pass (rows merged or queued get lost)",
    ),
    m(
        "draw_ties_high_index",
        "dl/engine/draw.py",
        "i = jnp.min(jnp.where(s == best, iota, n))",
        "i = jnp.max(jnp.where(s == best, iota, -1))",
        ["tests/test_draw.py"],
        "the server's draw breaks ties unlike lax.top_k (other nodes than before)",
    ),
    m(
        "cursor_strict",
        "dl/traces/availability.py",
        "return nxt <= t",
        "return nxt < t",
        ["tests/test_draw.py"],
        "the availability cursor misses a transition at the query time (sessions half-open)",
    ),
    m(
        "inflight_bound_no_quantum",
        "dl/engine/inflight.py",
        "proactive = np.ceil((t + quantum_s + tol) / period_s)",
        "proactive = np.ceil((t + tol) / period_s)",
        GOSSIP,
        "in-flight bound forgets messages sent and delivered within the quantum",
    ),
    m(
        "explicit_cap_counts_delivered",
        "dl/engine/gossip_clock.py",
        "wire = keep & (msgs.arrive >= t1)",
        "wire = keep",
        GOSSIP,
        "an explicit inflight_cap also counts messages delivered in their sending quantum",
    ),
    m(
        "threefry_rotation",
        "dl/engine/draw.py",
        "ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))",
        "ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 25))",
        ["tests/test_draw.py"],
        "the server's uniform scores are no longer jax.random.uniform's (other nodes drawn)",
    ),
]
