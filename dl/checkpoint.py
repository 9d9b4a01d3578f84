"""Whole-simulator checkpoints with Orbax: the algorithm state pytree (node and server models,
ages, buffers, slots, clocks, trace cursors, energy/byte counters; random streams are derived
from (seed, time, node id), so no key is stored) plus the host loop's position (metrics rows
written, totals, next evaluation time, W&B run id).

Orbax writes each step into a temporary directory and renames it when complete, so a crash in
the middle of a save leaves nothing that `latest_step` would pick up. On resume the metrics
file is cut back to the rows the checkpoint had written, so the resumed run's `metrics.jsonl`
equals the uninterrupted run's.

Several processes (`dist.enabled=true`, every process computing the same run): only process 0
saves; every process restores on resume. Each process's manager covers only itself
(`active_processes`), so no save waits on a barrier with processes that do not save.
"""

import signal
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from dl.errors import ConfigError


class Checkpointer:
    """Saves every `every_s` virtual seconds and on SIGTERM; restores the latest step."""

    def __init__(self, directory: Path, every_s: float | None, keep: int = 2, write: bool = True):
        """`write=False`: restore only; `save` just advances the schedule (processes > 0)."""
        if every_s is not None and every_s <= 0:
            raise ConfigError(f"ckpt.every_s must be > 0 or null, got {every_s}")
        self.every_s = every_s
        self.write = write
        self.directory = Path(directory).resolve()
        if write:  # orbax cannot create it when `active_processes` is set
            self.directory.mkdir(parents=True, exist_ok=True)
        pid = jax.process_index()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep,
                create=False,
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    primary_host=pid, active_processes={pid}
                ),
            ),
        )
        self.next_s = every_s
        self.stop_requested = False
        self._old = signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum, frame) -> None:
        self.stop_requested = True

    def due(self, clock: float) -> bool:
        return self.stop_requested or (self.next_s is not None and clock >= self.next_s)

    def save(self, step: int, state: Any, host: dict, clock: float) -> None:
        if self.write:
            self._save(step, state, host)
        if self.every_s is not None:
            while self.next_s <= clock:
                self.next_s += self.every_s

    def _save(self, step: int, state: Any, host: dict) -> None:
        state = jax.device_get(state)
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), host=ocp.args.JsonSave(host)
            ),
        )
        self.manager.wait_until_finished()

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict]:
        step = self.latest() if step is None else step
        if step is None:
            raise ConfigError(f"resume: no complete checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()
            ),
        )
        if self.every_s is not None:
            clock = float(out["host"]["clock"])
            while self.next_s <= clock:
                self.next_s += self.every_s
        return out["state"], out["host"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
        signal.signal(signal.SIGTERM, self._old)
