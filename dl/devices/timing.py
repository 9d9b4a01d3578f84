"""FedScale's client time model: how long local training and the model transfers take.

Source: FedScale (Lai et al., ICML 2022), `fedscale/cloud/internal/client_metadata.py`
(`get_completion_time`) and `aggregation/aggregator.py` (model size in kbit); ALGORITHMS.md §4.3.

    t_comp [s] = 3 * batch_size * local_steps * ms_per_sample / 1000   (x3 = forward + 2x backward)
    t_comm [s] = up_kbit / up_kbps + down_kbit / down_kbps
    model_kbit = num_bytes / 1024 * 8

Units follow FedScale exactly: a "kbit" is 1024 bits (`model_kbit`), and bandwidths in kbit/s are
divided into it directly, so a 1 MiB model is 8,192 kbit and takes 0.8192 s each way at
10,000 kbit/s. FedScale's capacity trace has a single `communication` bandwidth for both
directions; pass it as both `up_kbps` and `down_kbps` and the sum is FedScale's
`(upload + download) / communication`.

Convention: the batch factor is kept (FedScale's, per local step of `batch_size` samples); dasklearn
drops it (`3 * local_steps * ms / 1000`). All functions are numpy/jax agnostic: they use only
arithmetic, so they accept Python floats, numpy arrays or jax arrays (broadcasting as usual).
"""

from __future__ import annotations

from typing import Any

BITS_PER_KBIT = 1024.0  # FedScale: model_kbit = bytes / 1024 * 8
FWD_BWD_FACTOR = 3.0  # FedScale `augmentation_factor`: backward ~ 2x forward

Array = Any  # float, np.ndarray or jax.Array


def compute_time_s(ms_per_sample: Array, batch_size: Array, local_steps: Array) -> Array:
    """Seconds of local training: `3 * batch_size * local_steps * ms_per_sample / 1000`.

    `ms_per_sample` is FedScale's `computation` (forward-pass latency per example, ms), e.g. [N].
    """
    return FWD_BWD_FACTOR * batch_size * local_steps * ms_per_sample / 1000.0


def comm_time_s(up_bits: Array, down_bits: Array, up_kbps: Array, down_kbps: Array) -> Array:
    """Seconds to upload `up_bits` and download `down_bits` at the given bandwidths (kbit/s).

    Bits are turned into FedScale kbit (1024 bits each) before dividing, so
    `comm_time_s(8 * 2**20, 8 * 2**20, 1e4, 1e4) == 1.6384`. Zero bits cost zero time.
    """
    return up_bits / BITS_PER_KBIT / up_kbps + down_bits / BITS_PER_KBIT / down_kbps


def model_kbit(num_bytes: Array) -> Array:
    """FedScale's model size in kbit: `num_bytes / 1024 * 8` (1 MiB -> 8,192 kbit)."""
    return num_bytes / 1024.0 * 8.0


def kbit_to_bits(kbit: Array) -> Array:
    """Inverse of the kbit convention above: `kbit * 1024` bits."""
    return kbit * BITS_PER_KBIT


def client_time_s(
    ms_per_sample: Array,
    batch_size: Array,
    local_steps: Array,
    up_bits: Array,
    down_bits: Array,
    up_kbps: Array,
    down_kbps: Array,
) -> Array:
    """FedScale's `t_client = t_comp + t_comm` for one download-train-upload cycle."""
    return compute_time_s(ms_per_sample, batch_size, local_steps) + comm_time_s(
        up_bits, down_bits, up_kbps, down_kbps
    )
