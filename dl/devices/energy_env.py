"""Per-node session times and joules, precomputed once from device profiles and the radio model.

Training energy = power_w x t_comp (ALGORITHMS.md §5, §4.3); radio energy per model transfer
from Huang et al. (MobiSys 2012) via `dl.devices.energy`, one burst per transfer; no server
energy. `upload_scaled(s)`: an upload compressed to a fraction `s` (ALGORITHMS.md §1.4).
Notes: docs/NOTES.md#dldevicesenergy_envpy
"""

from dataclasses import dataclass, replace
from typing import Any

import jax.numpy as jnp

from dl.devices.energy import PRESETS, kbps_to_mbps, radio_energy_j
from dl.devices.profiles import DeviceProfiles
from dl.devices.timing import comm_time_s, compute_time_s
from dl.errors import ConfigError


@dataclass(frozen=True)
class EnergyEnv:
    t_down: Any  # [N] f32 s to download one model
    t_comp: Any  # [N] f32 s of one local-training session
    t_up: Any  # [N] f32 s to upload one model
    power_w: Any  # [N] f32 training power
    e_down_j: Any  # [N] f32 radio J per download (incl. burst overhead)
    e_up_j: Any  # [N] f32 radio J per upload (incl. burst overhead)
    e_burst_j: Any  # [N] f32 radio J of the burst overhead (tail + promotion) in each transfer

    @property
    def t_client(self):
        return self.t_down + self.t_comp + self.t_up

    def upload_scaled(self, frac: float) -> "EnergyEnv":
        """The same nodes uploading a fraction `frac` of the model's bits: `t_up` and the upload's
        transfer joules times `frac`, the burst overhead unchanged."""
        if frac == 1.0:
            return self
        return replace(
            self,
            t_up=self.t_up * frac,
            e_up_j=(self.e_up_j - self.e_burst_j) * frac + self.e_burst_j,
        )

    def message_scaled(self, frac: float) -> "EnergyEnv":
        """A gossip message carrying a fraction `frac` of the model (subsampling: s; partitioned
        subsampling: 1/P): both directions' transfer joules and times times `frac`, each
        transfer's burst overhead (LTE tail + promotion) paid in full."""
        if frac == 1.0:
            return self
        b = self.e_burst_j
        return replace(
            self,
            t_up=self.t_up * frac,
            t_down=self.t_down * frac,
            e_up_j=(self.e_up_j - b) * frac + b,
            e_down_j=(self.e_down_j - b) * frac + b,
        )


# the traffic and energy counters every event engine accumulates and the host drains
TRAFFIC_COUNTERS = (
    "bytes_up",
    "bytes_down",
    "energy_compute_j",
    "energy_radio_j",
    "energy_wasted_j",
)
ENERGY_FIELDS = ("t_down", "t_comp", "t_up", "power_w", "e_down_j", "e_up_j", "e_burst_j")


def make_energy_env(
    profiles: DeviceProfiles, model_bytes: int, batch_size: int, local_steps: int, cfg: dict
) -> EnergyEnv:
    radio = cfg.get("radio", "wifi")
    if radio not in PRESETS:
        raise ConfigError(f"unknown energy.radio '{radio}' (choose from: {', '.join(PRESETS)})")
    model = PRESETS[radio]
    bits = jnp.float32(model_bytes * 8.0)
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    up, down = f(profiles.up_kbps), f(profiles.down_kbps)
    zero = jnp.zeros_like(up)
    bursts = float(cfg.get("bursts_per_transfer", 1.0))
    return EnergyEnv(
        t_down=comm_time_s(zero, bits, up, down),
        t_comp=f(compute_time_s(f(profiles.ms_per_sample), batch_size, local_steps)),
        t_up=comm_time_s(bits, zero, up, down),
        power_w=f(profiles.power_w) * float(cfg.get("power_scale", 1.0)),
        e_down_j=radio_energy_j(model, zero, bits, kbps_to_mbps(up), kbps_to_mbps(down), bursts),
        e_up_j=radio_energy_j(model, bits, zero, kbps_to_mbps(up), kbps_to_mbps(down), bursts),
        e_burst_j=zero + bursts * model.burst_overhead_j(),
    )
