"""FedScale's client time model: how long local training and the model transfers take.

FedScale (Lai et al., ICML 2022), `get_completion_time`; ALGORITHMS.md §4.3:
    t_comp [s] = 3 * batch_size * local_steps * ms_per_sample / 1000
    t_comm [s] = up_kbit / up_kbps + down_kbit / down_kbps,   model_kbit = num_bytes / 1024 * 8
Units are FedScale's (1 kbit = 1024 bits); plain arithmetic, so numpy/jax agnostic.
Notes: docs/NOTES.md#dldevicestimingpy
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
