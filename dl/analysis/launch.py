"""The cached run launcher of the figure and suite scripts: one `python -m dl.run` subprocess
per run folder, skipped when the folder already holds that run completed.

A folder is *done* when its `summary.json` has status `completed` (runs written before the
status existed count as completed) and, when the caller keys runs by their command, its
`cmd.txt` holds that command. Anything else in the folder (an interrupted, failed or outdated
run) is removed and the run starts afresh.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path


def is_done(run_dir: Path, key: str | None = None) -> bool:
    """True when `run_dir` holds a completed run (of the command `key`, if given)."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if summary.get("status", "completed") != "completed":
        return False
    if key is not None:
        cmd = run_dir / "cmd.txt"
        return cmd.is_file() and cmd.read_text() == key
    return True


def run_cached(cmd: list, run_dir: Path, cwd: Path, key: str | None = None, force=False) -> dict:
    """Runs `cmd` unless `run_dir` is done; returns {dir, status, wall_s, stderr (failed)}.
    status: "done before", "ran" or "failed (exit N)". With `key`, a successful run records
    it in `cmd.txt`."""
    run_dir = Path(run_dir)
    if not force and is_done(run_dir, key):
        return {"dir": str(run_dir), "status": "done before"}
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    rec = {"dir": str(run_dir), "cmd": cmd[2:], "wall_s": round(time.perf_counter() - t, 1)}
    rec["status"] = "ran" if p.returncode == 0 else f"failed (exit {p.returncode})"
    if p.returncode:
        rec["stderr"] = p.stderr.strip().splitlines()[-3:]
    elif key is not None:
        (run_dir / "cmd.txt").write_text(key)
    return rec


def run_checked(cmd: list, run_dir: Path, cwd: Path, key: str | None = None, force=False) -> dict:
    """`run_cached`, stopping the calling script (SystemExit, naming the run and the last lines
    of its stderr) when the run fails."""
    rec = run_cached(cmd, run_dir, cwd, key, force)
    if rec["status"].startswith("failed"):
        tail = "\n".join(rec.get("stderr", []))
        raise SystemExit(f"error: {run_dir}: {rec['status']}\n{tail}")
    return rec


def compose(overrides: list) -> dict:
    """The resolved config that `python -m dl.run <overrides>` would run, checked as dl.run
    checks it (unknown group option or key, then `dl.config_schema`): a bad override raises
    one `ConfigError` line. For scripts that read a run's config (or run it in process)."""
    from dl.resume_config import parse_overrides, precheck
    from dl.run import check_overrides

    check_overrides(list(overrides))
    return precheck(parse_overrides(list(overrides)))
