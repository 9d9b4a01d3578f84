"""Entry point: `python -m dl.run [overrides]` or `dl-run [overrides]` (Hydra).

Config groups live in `conf/` (task, algorithm, trace, server, energy, discovery, logger,
experiment). Every run writes `metrics.jsonl`, `summary.json` and the resolved `config.yaml`
into its Hydra run directory (several tasks: also `overlay.json`); with `dist.enabled=true`
only process 0 writes them (`dl.sharding`). A bad input stops with one
line `error: <cause>` and exit status 2.
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dl.errors import ConfigError, DLError

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
OmegaConf.register_new_resolver("mul", lambda a, b: float(a) * float(b), replace=True)


def group_options(group: str) -> list[str]:
    """Names of the YAML options of a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_overrides(argv: list[str]) -> None:
    """Rejects `group=unknown` overrides with one line naming the group and the valid options."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key in GROUPS and value not in ("null", ""):
            options = group_options(key)
            for v in value.split(","):
                if v not in options:
                    raise ConfigError(f"unknown {key} '{v}' (choose from: {', '.join(options)})")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from dl.sharding import init_distributed, is_writer
    from dl.simulate import simulate

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        init_distributed(resolved)  # before any JAX computation
        if is_writer():
            run_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(resolved), run_dir / "config.yaml")
        summary = simulate(resolved, run_dir)
    except DLError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if summary is None:  # stopped by SIGTERM after a checkpoint
        sys.exit(143)
    if summary.get("tasks"):
        for name in summary["tasks"]:
            acc = summary.get(f"{name}/test_accuracy")
            acc = "no training" if acc is None else f"final test accuracy {acc:.4f}"
            print(
                f"{name}: {summary[f'{name}/review']}, {acc}, chosen by "
                f"{summary.get(f'{name}/ever_chose', 0)} nodes"
            )
        print(f"-> {summary['run_dir']}")
        return None
    acc = summary.get("test_accuracy")
    what = f"final test accuracy {acc:.4f}" if acc is not None else "system-only run done"
    print(
        f"{what} at virtual time {summary['virtual_time_s']:.0f} s after {summary['round']} "
        f"rounds -> {summary['run_dir']}"
    )
    return acc


def main() -> None:
    try:
        check_overrides(sys.argv[1:])
    except DLError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
