"""Entry point: `python -m dl.run [overrides]` or `dl-run [overrides]` (Hydra).

Config groups live in `conf/` (task, algorithm, trace, server, energy, discovery, logger,
experiment). Every run writes `metrics.jsonl`, `summary.json` and the resolved `config.yaml`
into its Hydra run directory (several tasks: also `overlay.json`); with `dist.enabled=true`
only process 0 writes them (`dl.sharding`). A bad input stops with one line `error: <cause>`
and exit status 2; a failed run records `status: failed` and the error in `summary.json` and
`run.log`.

Before Hydra starts, the overrides are checked against the composed defaults (unknown keys,
also added with `+`, are refused) and the composed config against `dl.config_schema`.
`resume=<run dir>` does not go through Hydra: it runs the run's own `config.yaml`, refusing
overrides that would change the simulation (`dl.resume_config`).
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dl import hugepages
from dl.errors import ConfigError, DLError
from dl.resume_config import (
    CONF_DIR,
    GROUPS,
    compose_resolved,
    group_options,
    parse_overrides,
    precheck,
    resume_config,
)

__all__ = [
    "CONF_DIR",
    "GROUPS",
    "check_overrides",
    "compose_resolved",
    "execute",
    "group_options",
    "main",
]


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


def use_compile_cache(path) -> None:
    """`sim.compile_cache`: JAX's persistent compilation cache in `path` (null: off). A second
    run with the same shapes (another seed of a sweep, a resumed run) loads its compiled chunks
    instead of compiling them; every compiled program is cached, however fast it compiled."""
    if not path:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(Path(str(path)).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def execute(cfg: dict, run_dir: Path, log_path: Path | None) -> dict | None:
    """Runs the resolved config `cfg` into `run_dir`; on a DLError records `status: failed`
    and the error line in `summary.json` and the run log, prints it and exits 2."""
    from dl.config_schema import validate
    from dl.io.metrics import record_failure
    from dl.sharding import init_distributed, is_writer
    from dl.simulate import simulate

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)
    writer = True
    try:
        validate(cfg)
        use_compile_cache(cfg["sim"].get("compile_cache"))
        init_distributed(cfg)  # before any JAX computation
        writer = is_writer()
        if writer:
            run_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(cfg), run_dir / "config.yaml")
        summary = simulate(cfg, run_dir)
    except OSError as e:  # an unwritable or full run/checkpoint folder
        msg = f"cannot write {e.filename or run_dir}: {e.strerror or e}"
        if writer:
            record_failure(run_dir, msg, log_path)
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except DLError as e:
        if writer:
            record_failure(run_dir, str(e), log_path)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # a bug: keep the traceback, but record the failure first
        if writer:
            record_failure(run_dir, f"{type(e).__name__}: {e}".splitlines()[0], log_path)
        raise
    if summary is not None and summary.get("status") == "interrupted":
        sys.exit(summary["exit_code"])
    return summary


def report(summary: dict) -> float | None:
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    log_path = run_dir / f"{hc.job.name}.log"
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        if (run_dir / "metrics.jsonl").exists():
            raise ConfigError(
                f"run directory {run_dir} already holds a run (metrics.jsonl); "
                f"continue it with resume={run_dir} or choose another hydra.run.dir"
            )
    except DLError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return report(execute(resolved, run_dir, log_path))


def main() -> None:
    hugepages.reexec()  # once, before JAX allocates (DL_HUGEPAGES=0: off)
    argv = sys.argv[1:]
    try:
        check_overrides(argv)
        flags = [a for a in argv if a.startswith("-")]
        if flags and not set(flags) <= {"-m", "--multirun"}:
            hydra_main()  # --help, --cfg, --info, ...: Hydra's own
            return
        overrides = parse_overrides([a for a in argv if not a.startswith("-")])
        resume = overrides.value("resume")
        if resume not in (None, False, "false", "False", ""):
            if flags:
                raise ConfigError("resume cannot be combined with -m (multirun)")
            cfg, run_dir = resume_config(overrides, resume)
            summary = execute(cfg, run_dir, run_dir / "run.log")
            if summary is not None:
                report(summary)
            return
        precheck(overrides, multirun=bool(flags))
    except DLError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
