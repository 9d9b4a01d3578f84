"""Reading a run folder: `metrics.jsonl` rows, `config.yaml`, `summary.json`.

A run folder is what `python -m dl.run` writes (README, "Each run writes ..."). Rows are read
strictly: a line that is not a JSON object stops with one `RunReadError` naming file and line,
except a last line without its newline (a run killed mid-write), which is skipped.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path


class RunReadError(ValueError):
    """A run file that cannot be read; the message names the file and the defect."""


@dataclass(frozen=True)
class Run:
    path: Path
    rows: list  # [R] dicts, one per evaluation, in virtual-time order
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def column(self, key: str) -> list:
        """Values of `key` per row (None where a row lacks it)."""
        return [r.get(key) for r in self.rows]


def read_metrics(path: Path) -> list:
    """Rows of a metrics.jsonl; a torn last line (no trailing newline) is dropped."""
    path = Path(path)
    if not path.is_file():
        raise RunReadError(f"{path}: no such metrics file")
    text = path.read_text()
    lines = text.split("\n")
    torn = not text.endswith("\n") and lines[-1] != ""
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if torn and i == len(lines):
                break
            raise RunReadError(f"{path}:{i}: not a JSON object") from None
        if not isinstance(row, dict):
            raise RunReadError(f"{path}:{i}: not a JSON object")
        rows.append(row)
    return rows


def read_run(run_dir: Path) -> Run:
    """The rows, resolved config (if any) and summary (if any) of one run folder."""
    run_dir = Path(run_dir)
    config, summary = {}, {}
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        import yaml

        try:
            config = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as e:
            raise RunReadError(f"{cfg_path}: not valid YAML ({e.__class__.__name__})") from None
    sum_path = run_dir / "summary.json"
    if sum_path.is_file():
        try:
            summary = json.loads(sum_path.read_text())
        except json.JSONDecodeError:
            raise RunReadError(f"{sum_path}: not valid JSON") from None
    return Run(run_dir, read_metrics(run_dir / "metrics.jsonl"), config, summary)
