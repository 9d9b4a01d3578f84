"""Device energy: radio energy per transfer, compute energy per local training (ALGORITHMS.md §5).

Radio: the linear power model of Huang et al., MobiSys 2012 (`P = alpha * r + beta` mW at
r Mbit/s) plus a tail and a promotion per burst; presets `WIFI`, `LTE`, `THREE_G` (alpha/beta
of ALGORITHMS.md §5, LTE/3G tails from the paper's RRC numbers, WiFi's tail taken as 0).
Compute: `E = power_w * t_comp_s` (dl.devices.timing).
numpy/jax agnostic; a RadioModel is a pytree, so it can be passed into jitted code.
Notes: docs/NOTES.md#dldevicesenergypy (formula, worked numbers, open item on 3G's tail)
"""

from __future__ import annotations

from typing import Any

from flax import struct

Array = Any  # float, np.ndarray or jax.Array


@struct.dataclass
class RadioModel:
    """Linear radio power model (Huang et al. 2012); scalars, or [N] arrays for per-node radios."""

    alpha_up: Array  # mW per Mbit/s of uplink throughput
    alpha_down: Array  # mW per Mbit/s of downlink throughput
    beta: Array  # mW base power while transferring
    tail_s: Array = 0.0  # s in the high-power tail after a burst
    tail_mw: Array = 0.0  # mW during the tail
    promo_s: Array = 0.0  # s of promotion (idle -> connected) before a burst
    promo_mw: Array = 0.0  # mW during promotion

    def burst_overhead_j(self) -> Array:
        """J of tail + promotion paid once per burst."""
        return (self.tail_s * self.tail_mw + self.promo_s * self.promo_mw) / 1000.0


WIFI = RadioModel(alpha_up=283.17, alpha_down=137.01, beta=132.86)
LTE = RadioModel(
    alpha_up=438.39,
    alpha_down=51.97,
    beta=1288.04,
    tail_s=11.576,
    tail_mw=1060.0,
    promo_s=0.26,
    promo_mw=1210.7,
)
THREE_G = RadioModel(
    alpha_up=868.98,
    alpha_down=122.12,
    beta=817.88,
    tail_s=8.088,
    tail_mw=803.9,
    promo_s=0.582,
    promo_mw=659.4,
)
PRESETS = {"wifi": WIFI, "lte": LTE, "3g": THREE_G}


def transfer_energy_j(alpha: Array, beta: Array, bits: Array, mbps: Array) -> Array:
    """J to move `bits` at `mbps` Mbit/s with power `alpha * mbps + beta` mW."""
    return (alpha * mbps + beta) * (bits / (mbps * 1e6)) / 1000.0


def radio_energy_j(
    model: RadioModel,
    up_bits: Array,
    down_bits: Array,
    up_mbps: Array,
    down_mbps: Array,
    bursts: Array = 0,
) -> Array:
    """J spent by the radio: upload + download at their rates, plus `bursts` tails/promotions."""
    up = transfer_energy_j(model.alpha_up, model.beta, up_bits, up_mbps)
    down = transfer_energy_j(model.alpha_down, model.beta, down_bits, down_mbps)
    return up + down + bursts * model.burst_overhead_j()


def compute_energy_j(power_w: Array, t_comp_s: Array) -> Array:
    """J of local training: `power_w * t_comp_s`."""
    return power_w * t_comp_s


def kbps_to_mbps(kbps: Array) -> Array:
    """Profile bandwidth (FedScale kbit/s, 1 kbit = 1024 bit) to Mbit/s (10^6 bit/s)."""
    return kbps * 1024.0 / 1e6
