"""Composing and checking configs before a run starts (used by `dl.run`).

`precheck`: every override names a key that the composed defaults declare (also with `+`:
`+sim.num_nodse=10` is refused, not silently added), an explicit `hydra.run.dir` holds no
earlier run, and the composed config passes `dl.config_schema.validate`.

`resume_config`: `resume=<run dir>` runs that run's own `config.yaml`. Overrides may change only
what does not change the simulation (`RESUMABLE`); any other override must equal the run's
value (so the original command line plus `resume=X` works), else one line names the key.
"""

import os
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from dl.config_schema import check_key, has_key, validate
from dl.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = (
    "task",
    "algorithm",
    "trace",
    "server",
    "energy",
    "discovery",
    "logger",
    "launcher",
    "experiment",
)
# What a resumed run may change: how long it goes on, how it reports, how often it checkpoints.
RESUMABLE = ("sim.duration_s", "sim.progress", "sim.compile_cache", "logger", "ckpt.every_s")
RESUMABLE += ("ckpt.keep", "resume")
_UID = os.urandom(3).hex()
MAX_SWEEP_CHECKS = 64  # compositions spent on checking sweep values before the launch

OmegaConf.register_new_resolver("mul", lambda a, b: float(a) * float(b), replace=True)
# a short random suffix: two runs started in the same second get different default folders
OmegaConf.register_new_resolver("dl_uid", lambda: _UID, replace=True)


def group_options(group: str) -> list[str]:
    """Names of the YAML options of a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


class Overrides(list):
    """Parsed command-line overrides (Hydra's `Override` objects)."""

    def find(self, key: str):
        hits = [o for o in self if o.key_or_group == key]
        return hits[-1] if hits else None

    def value(self, key: str) -> Any:
        o = self.find(key)
        return None if o is None or o.is_delete() else o.value()


def parse_overrides(args: list[str]) -> Overrides:
    parser = OverridesParser.create()
    out = Overrides()
    for arg in args:
        try:
            out.extend(parser.parse_overrides([arg]))
        except Exception as e:
            raise ConfigError(f"{arg}: cannot parse this override ({_first_line(e)})") from None
    return out


def _first_line(e: Exception) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return lines[0] if lines else type(e).__name__


def text(o) -> str:
    """The override's value as typed (the first value of a sweep)."""
    if o.is_sweep_override():
        return next(iter(o.sweep_string_iterator()))
    return o.get_value_element_as_str()


def line(o) -> str:
    """The override as one composable line (a sweep reduced to its first value)."""
    if not o.is_sweep_override():
        return o.input_line
    prefix = "~" if o.is_delete() else "++" if o.is_force_add() else "+" if o.is_add() else ""
    return f"{prefix}{o.key_or_group}={text(o)}"


def is_hydra(o) -> bool:
    return o.key_or_group.split(".")[0].split("/")[0] == "hydra"


def compose_resolved(lines: list[str]) -> dict:
    """Composes `conf/config.yaml` with `lines`; any Hydra/OmegaConf error becomes one line."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=lines)
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(_first_line(e)) from None


def precheck(overrides: Overrides, multirun: bool = False) -> dict:
    """Unknown keys, a reused run folder and bad values, before Hydra starts; returns the
    composed config (sweeps: their first values)."""
    plain = [o for o in overrides if not is_hydra(o)]
    groups = [line(o) for o in plain if o.key_or_group in GROUPS]
    base = compose_resolved(groups)
    for o in plain:
        if o.key_or_group not in GROUPS and not o.is_delete():
            check_key(base, o.key_or_group, text(o))
    run_dir = overrides.value("hydra.run.dir")
    if not multirun and run_dir and (Path(str(run_dir)) / "metrics.jsonl").exists():
        raise ConfigError(
            f"hydra.run.dir={run_dir}: already holds a run (metrics.jsonl); continue it with "
            f"resume={run_dir} or choose another directory"
        )
    if run_dir:
        writable(Path(str(run_dir)), "hydra.run.dir")
    cfg = compose_resolved([line(o) for o in plain])
    validate(cfg)
    checked = 0
    for i, o in enumerate(plain):  # every value of a sweep, the others at their first value
        if not o.is_sweep_override() or o.key_or_group in GROUPS:
            continue
        for v in list(o.sweep_string_iterator())[1:]:
            if checked >= MAX_SWEEP_CHECKS:
                break
            lines = [line(x) for x in plain]
            lines[i] = f"{line(o).rsplit('=', 1)[0]}={v}"
            validate(compose_resolved(lines))
            checked += 1
    if cfg.get("ckpt", {}).get("dir"):
        writable(Path(cfg["ckpt"]["dir"]), "ckpt.dir")
    return cfg


def writable(path: Path, key: str) -> None:
    """Refuses a folder that cannot be created or written, in one line naming `key`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{key}={path}: cannot create it ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={path}: not writable")


def _select(cfg: dict, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _set(cfg: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _diff(a: Any, b: Any, key: str) -> tuple[str, Any, Any] | None:
    """The first key below `key` whose values differ in `a` (new) and `b` (the run's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _diff(a.get(k), b.get(k), f"{key}.{k}" if key else k)
            if d is not None:
                return d
        return None
    return None if a == b else (key, a, b)


def _resumable(key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in RESUMABLE)


def resume_config(overrides: Overrides, resume: Any) -> tuple[dict, Path]:
    """(config, run dir) of `resume=<run dir>` (or `resume=true hydra.run.dir=<run dir>`)."""
    if resume is True or str(resume).lower() == "true":
        resume = overrides.value("hydra.run.dir")
        if not resume:
            raise ConfigError("resume=true needs hydra.run.dir=<run dir>; or use resume=<run dir>")
    run_dir = Path(str(resume)).expanduser()
    if not run_dir.is_dir():
        raise ConfigError(f"resume={resume}: run directory {run_dir} does not exist")
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError(
            f"resume={resume}: {run_dir} holds no run (no config.yaml, no complete checkpoint)"
        )
    try:
        saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True)
    except Exception as e:
        raise ConfigError(
            f"resume={resume}: {saved_path} is unreadable ({_first_line(e)})"
        ) from None
    if not isinstance(saved, dict) or "sim" not in saved:
        raise ConfigError(f"resume={resume}: {saved_path} is not a dl run config")
    new = [o for o in overrides if not is_hydra(o) and o.key_or_group != "resume"]
    for o in new:
        if o.is_sweep_override():
            raise ConfigError(f"{o.key_or_group}={text(o)}: a sweep cannot resume one run")
    cfg = saved
    if new:
        composed = compose_resolved(_original(run_dir, new) + [o.input_line for o in new])
        for o in new:
            key = o.key_or_group
            prefix = "" if key == "experiment" else key
            if _resumable(key):
                _set(cfg, key, _select(composed, key))
                continue
            a = _select(composed, prefix) if prefix and has_key(composed, prefix) else composed
            b = _select(saved, prefix) if prefix and has_key(saved, prefix) else saved
            d = _diff(a, b, prefix)
            if d is not None and not _resumable(d[0]):
                raise ConfigError(
                    f"resume: {d[0]}={_show(d[1])} differs from the run's {_show(d[2])} "
                    f"({saved_path}); a resumed run keeps its config (may change: "
                    f"{', '.join(r for r in RESUMABLE if r != 'resume')})"
                )
    cfg["resume"] = str(run_dir)
    validate(cfg)
    return cfg, run_dir


def _show(v: Any) -> str:
    return "null" if v is None else str(v).replace(" ", "")


def _original(run_dir: Path, new: list) -> list[str]:
    """The run's own command-line overrides (Hydra's `.hydra/overrides.yaml`), minus those the
    new command line sets again."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        old = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return []
    keys = {o.key_or_group for o in new}
    out = []
    for o in parse_overrides([str(x) for x in old]):
        if not is_hydra(o) and o.key_or_group not in keys and o.key_or_group != "resume":
            out.append(o.input_line)
    return out
