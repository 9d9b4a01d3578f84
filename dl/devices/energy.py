"""Device energy: radio energy per transfer, compute energy per local training (ALGORITHMS.md §5).

Radio: the linear power model of Huang et al., "A Close Examination of Performance and Power
Characteristics of 4G LTE Networks", MobiSys 2012: while moving data at r Mbit/s the radio draws
`P = alpha * r + beta` mW (alpha_up for uplink, alpha_down for downlink). After each burst a
cellular radio stays in a high-power tail (LTE: 11.576 s at 1060 mW, about 12.3 J) and pays a
promotion from idle before the next one (LTE: 0.26 s at 1210.7 mW). Coefficients as tabulated in
ALGORITHMS.md §5 (WiFi, LTE, 3G alpha/beta and the LTE tail/promotion; [M, high confidence]). The
3G tail/promotion (8.088 s at 803.9 mW; 0.582 s at 659.4 mW) are the same paper's 3G RRC numbers,
from memory [M]: check them against the PDF before relying on 3G tail energy. WiFi's tail is
short (a fraction of a second at about 120 mW) and is taken as 0, as in ALGORITHMS.md.

    E_radio = (alpha_u r_u + beta) t_up + (alpha_d r_d + beta) t_down
              + bursts * (tail_s * tail_mw + promo_s * promo_mw),   t = bits / (r * 1e6)

in mJ (mW x s), returned in J. Compute: `E = power_w * t_comp_s` (t_comp from dl.devices.timing).
Worked numbers (1 MB = 8 Mbit): WiFi up 3.33 J @ 1 Mbps, 2.48 @ 5, 2.37 @ 10; WiFi down 1.31 J @ 5,
1.15 @ 20; LTE up 13.8 J @ 1, 5.57 @ 5; LTE down 0.93 J @ 20 (+12.3 J tail per burst).

All functions are numpy/jax agnostic (plain arithmetic; broadcasting over [N] arrays), and a
RadioModel is a pytree so it can be passed into jitted code.
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
