"""Run outputs: `metrics.jsonl` (one JSON object per evaluation), W&B mirroring, summary files.

Every line is written with a single `write` + flush, so a crash never leaves a half line; the
summary is written to a temporary file and renamed into place (atomic on POSIX).
"""

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from dl.errors import ConfigError, DataError


def _clean(v: Any) -> Any:
    """JSON-safe scalars: numpy/jax scalars to Python, NaN/inf to None."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_json_atomic(path: Path, obj: Any) -> None:
    """Writes `obj` as JSON to `path` via a temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_clean)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MetricsLogger:
    """Mirrors each evaluation to `<run_dir>/metrics.jsonl` and, when enabled, to W&B."""

    def __init__(
        self,
        run_dir: Path,
        logger_cfg: dict,
        config: dict,
        name: str,
        append: bool = False,
        write: bool = True,
    ):
        """`append`: continue an existing file (a resumed run); otherwise a run that reuses a
        directory starts a new `metrics.jsonl` instead of adding to an old run's rows.
        `write=False` (processes other than 0 of a multi-process run): nothing is written."""
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self._f = None
        self._wandb = None
        self.rows = 0
        kind = logger_cfg.get("kind", "disabled")
        if kind not in ("wandb", "disabled"):
            raise ConfigError(f"unknown logger.kind '{kind}' (choose from: wandb, disabled)")
        if not write:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        done = read_metrics(self.path) if append and self.path.exists() else []
        try:
            self._f = open(self.path, "a" if append else "w")
        except OSError as e:
            raise ConfigError(f"cannot write {self.path}: {e.strerror}") from None
        self.rows = len(done)
        if kind == "wandb":
            self._wandb = _init_wandb(logger_cfg, config, name, self.run_dir)
            # a resumed run re-logs the rows before its checkpoint (metrics.jsonl is the
            # record): the W&B run holds every row once even when the interrupted process
            # could not flush (SIGKILL); `_step` is the row index, so it continues
            for i, row in enumerate(done):
                self._wandb.log(row, step=i)

    @property
    def writes(self) -> bool:
        return self._f is not None

    def log(self, row: dict) -> None:
        if self._f is None:
            return
        row = {k: _clean(v) for k, v in row.items()}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        if self._wandb is not None:
            self._wandb.log(row, step=self.rows)
        self.rows += 1

    def close(self, summary: dict | None = None) -> None:
        if self._f is None:
            return
        self._f.close()
        if summary is not None:
            write_json_atomic(self.run_dir / "summary.json", summary)
        if self._wandb is not None:
            if summary:
                self._wandb.summary.update({k: _clean(v) for k, v in summary.items()})
            self._wandb.finish()


def _init_wandb(cfg: dict, config: dict, name: str, run_dir: Path):
    import wandb

    run = wandb.init(
        project=cfg.get("project", "dl"),
        entity=cfg.get("entity"),
        group=cfg.get("group"),
        name=name,
        tags=list(cfg.get("tags") or []),
        config=config,
        mode=cfg.get("mode", "offline"),
        dir=str(run_dir),
        id=cfg.get("id") or stable_run_id(run_dir),
        resume="allow",
        job_type="train",
        settings=wandb.Settings(console="off", silent=True),
    )
    wandb.define_metric("virtual_time_s")
    wandb.define_metric("*", step_metric="virtual_time_s")
    return run


def record_failure(run_dir: Path, message: str, log_path: Path | None = None) -> None:
    """A failed run's record: `summary.json` with `status: failed` and the error line, and the
    line appended to the run log (`run.log`)."""
    try:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            run_dir / "summary.json",
            {"status": "failed", "error": message, "run_dir": str(run_dir)},
        )
        with open(log_path or run_dir / "run.log", "a") as f:
            f.write(f"error: {message}\n")
    except OSError:
        pass  # an unwritable run folder: the error line on stderr is all there is


def stable_run_id(run_dir: Path) -> str:
    """A W&B run id derived from the run directory, so a resumed run continues the same run."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def read_metrics(path: Path) -> list[dict]:
    """Reads a `metrics.jsonl` file into a list of rows; a torn or non-JSON line stops with
    one line naming the file and the line."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {i} is not a JSON object ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {i} is not a JSON object")
            rows.append(row)
    return rows
