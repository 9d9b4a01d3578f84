"""Whole-simulator checkpoints with Orbax: the algorithm state pytree and the host loop's position.

Saves are atomic (Orbax renames a complete step); on resume `metrics.jsonl` is cut back to the
checkpoint's rows, so a resumed run equals the uninterrupted one. Only process 0 saves. Each step
carries `dl_checksums.json`; a step failing verification moves to `<dir>-corrupt/` and the next
older one is tried. `StopSignals` turns SIGTERM/SIGINT into a stop at the next evaluation.
Notes: docs/NOTES.md#dliocheckpointpy
"""

import hashlib
import json
import os
import shutil
import signal
import sys
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

    def due(self, clock: float) -> bool:
        return self.next_s is not None and clock >= self.next_s

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
        step_dir = self.directory / str(step)
        tmp = step_dir / (CHECKSUMS + ".tmp")
        tmp.write_text(json.dumps(checksums(step_dir)))
        os.replace(tmp, step_dir / CHECKSUMS)

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores `step`, or the newest step that passes the checksum and Orbax's restore;
        newer bad steps are moved aside (with a warning line) once an older one restored."""
        steps = sorted(self.manager.all_steps(), reverse=True) if step is None else [step]
        if not steps:
            raise ConfigError(f"resume: no complete checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        bad: list[tuple[int, str]] = []
        out = None
        for s in steps:
            why = verify(self.directory / str(s))
            if why is None:
                try:
                    out = self.manager.restore(
                        s,
                        args=ocp.args.Composite(
                            state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()
                        ),
                    )
                    _check_host(out["host"])
                    break
                except Exception as e:  # Orbax/TensorStore/JSON errors are many-line
                    why = _first_line(e)
            bad.append((s, why))
            if s != steps[-1]:
                print(
                    f"warning: checkpoint step {s} in {self.directory} is unusable ({why}); "
                    "trying the previous one",
                    file=sys.stderr,
                )
        if out is None:
            defects = "; ".join(f"step {s}: {why}" for s, why in bad)
            raise ConfigError(f"resume: no valid checkpoint in {self.directory} ({defects})")
        if bad and self.write:
            self._quarantine([s for s, _ in bad])
        if self.every_s is not None:
            clock = float(out["host"]["clock"])
            while self.next_s <= clock:
                self.next_s += self.every_s
        return out["state"], out["host"]

    def _quarantine(self, steps: list[int]) -> None:
        """Moves bad steps out of the way, so later saves (lower step numbers) are not skipped."""
        aside = self.directory.with_name(self.directory.name + "-corrupt")
        aside.mkdir(exist_ok=True)
        for s in steps:
            dest = aside / str(s)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(self.directory / str(s), dest)
        self.manager.reload()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


CHECKSUMS = "dl_checksums.json"


def checksums(step_dir: Path) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file under `step_dir` (but the checksum file)."""
    out = {}
    for p in sorted(step_dir.rglob("*")):
        if p.is_file() and p.name != CHECKSUMS and not p.name.endswith(".tmp"):
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[str(p.relative_to(step_dir))] = [p.stat().st_size, h.hexdigest()]
    return out


def verify(step_dir: Path) -> str | None:
    """None when every file matches the step's checksum file (or a step saved before checksums
    existed has none), else the first defect."""
    path = step_dir / CHECKSUMS
    if not path.exists():
        return None
    try:
        want = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"{CHECKSUMS} is unreadable"
    for rel, (size, _digest) in want.items():
        p = step_dir / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != size:
            return f"{rel} has {p.stat().st_size} bytes, {size} were written"
    got = checksums(step_dir)
    for rel, (_size, digest) in want.items():
        if got.get(rel, [None, None])[1] != digest:
            return f"{rel} does not match its checksum"
    return None


def _check_host(host: Any) -> None:
    if not isinstance(host, dict) or not {"rows", "clock", "target", "totals"} <= set(host):
        raise ValueError("host record lacks rows/clock/target/totals")


def _first_line(e: Exception) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


class StopSignals:
    """Context: SIGTERM and SIGINT set `signum` (stop at the next evaluation); a second SIGINT
    raises KeyboardInterrupt at once. No-op outside the main thread."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def _on(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._on)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or 0)

    def status(self) -> dict:
        """The run's `summary.json` status: completed, or interrupted by which signal."""
        if self.signum is None:
            return {"status": "completed"}
        return {"status": "interrupted", "signal": self.name, "exit_code": self.exit_code}
