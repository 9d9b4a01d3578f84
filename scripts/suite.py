"""The DecentraLearn evaluation suite (issue 13): FL vs gossip vs the hybrid across server
availability, over seeds, at one of three scales (`conf/suite/{smoke,cpu,gpu}.yaml`).

    python scripts/suite.py --scale smoke          # seconds; CI runs it (tests/test_suite.py)
    python scripts/suite.py --scale cpu --jobs 2   # the CPU scale (data root needed)
    python scripts/suite.py --scale gpu --launcher slurm_gpu   # each cell a Hydra multirun
    python scripts/suite.py --scale cpu --aggregate-only       # tables and figures again

Runs go to `<out>/runs/<task>/<server>/<alg>/seed<k>/` (gossip: `<task>/gossip/seed<k>`; see
dl/analysis/suite.py for the grid rules); a completed run of the same overrides (`cmd.txt`) is
skipped, an incomplete or differently configured one is started again. Then per cell: time,
energy and bytes to the task's target and the final metric, median and 95% bootstrap interval
over seeds (censored seeds counted as never reaching it), into `<out>/summary.json`,
`<out>/table.md` and figures `<out>/*.png`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dl.analysis.launch import is_done, run_cached  # noqa: E402
from dl.analysis.runs import RunReadError, read_metrics  # noqa: E402
from dl.analysis.stats import fmt, summarize  # noqa: E402
from dl.analysis.suite import SuiteError, cells, check_scale, run_overrides  # noqa: E402
from dl.analysis.targets import reach  # noqa: E402


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_scale(scale: str) -> dict:
    path = REPO / "conf" / "suite" / f"{scale}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.yaml"))
        fail(f"no suite scale '{scale}' (have: {', '.join(have)})")
    try:
        return check_scale(yaml.safe_load(path.read_text()), str(path))
    except (SuiteError, yaml.YAMLError) as e:
        fail(str(e).splitlines()[0])


def command(spec: dict, key: str, seed: int, run_dir: Path) -> list:
    ov = run_overrides(spec, key) + [f"seed={seed}", f"hydra.run.dir={run_dir}"]
    if "logger=disabled" not in ov:  # one W&B group per suite, tags per cell
        task, alg = key.split("/")[0], key.split("/")[-1]
        server = key.split("/")[1] if key.count("/") == 2 else "any"
        tags = [f"alg:{alg}", f"server:{server}", f"task:{task}", f"scale:{spec['scale']}"]
        ov += [f"logger.group=suite-{spec['scale']}", f"logger.tags=[{','.join(tags)}]"]
    return [sys.executable, "-m", "dl.run", *ov]


def run_key(cmd: list) -> str:
    """A run's identity: its Hydra overrides without the run folder, so a run made with other
    settings (a changed scale file) is not taken for done."""
    return " ".join(c for c in cmd[3:] if not c.startswith("hydra.run.dir="))


def run_one(cmd: list, run_dir: Path) -> dict:
    """Runs one seed unless done with this command (dl.analysis.launch.run_cached)."""
    return run_cached(cmd, run_dir, REPO, key=run_key(cmd))


def run_all(spec: dict, out: Path, jobs: int, launcher: str | None, dry: bool) -> list:
    keys = sorted({c.run_key for c in cells(spec, spec.get("only")) if c.run_key})
    todo = [(k, s) for k in keys for s in range(spec["seeds"])]
    if launcher:  # one Hydra multirun per run folder over its missing seeds
        recs = []
        for k in keys:
            miss = [s for s in range(spec["seeds"]) if not is_done(out / "runs" / k / f"seed{s}")]
            if not miss:
                continue
            cmd = command(spec, k, 0, out / "runs" / k)[:-2] + [
                "-m",
                f"launcher={launcher}",
                f"seed={','.join(map(str, miss))}",
                f"hydra.sweep.dir={out / 'runs' / k}",
                "hydra.sweep.subdir=seed${seed}",
            ]
            print(" ".join(cmd[1:]))
            if not dry:
                recs.append({"cmd": cmd[2:], "rc": subprocess.run(cmd, cwd=REPO).returncode})
        return recs
    if dry:
        for k, s in todo:
            print(" ".join(command(spec, k, s, out / "runs" / k / f"seed{s}")[1:]))
        return []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = [
            pool.submit(
                run_one,
                command(spec, k, s, out / "runs" / k / f"seed{s}"),
                out / "runs" / k / f"seed{s}",
            )
            for k, s in todo
        ]
        recs = []
        for f in futs:
            r = f.result()
            recs.append(r)
            print(f"{r['status']:18s} {r.get('wall_s', ''):>7} {r['dir']}", flush=True)
    return recs


FMT = {  # column -> (unit, scale, digits) for the table
    "time_s": (" min", 60.0, 1),
    "energy_j": (" kJ", 1e3, 2),
    "bytes": (" MB", 1e6, 1),
    "final": ("", 1.0, 3),
}


def check(spec: dict, out: Path) -> None:
    """Each distinct run config once, system-only and short: configs, data, traces, clocks and
    energy are exercised without training (the gpu scale's configs are validated this way);
    synchronous FedAvg, which has no system-only mode, trains one round instead."""
    keys = sorted({c.run_key for c in cells(spec, spec.get("only")) if c.run_key})
    short = ["sim.train=false", "sim.duration_s=1200", "sim.eval_every_s=600", "logger=disabled"]
    bad = 0
    for k in keys:
        d = out / k
        if d.exists():
            shutil.rmtree(d)
        cmd = command(spec, k, 0, d)
        cmd = [c for c in cmd if not c.startswith("logger.")] + short
        if k.endswith("/fedavg"):  # sync FedAvg has no system-only mode: one trained round
            cmd = [c for c in cmd if c != "sim.train=false"] + ["sim.max_rounds=1"]
        r = run_one(cmd, d)
        bad += r["status"] != "ran"
        print(f"{r['status']:18s} {r.get('wall_s', ''):>7} {k} {r.get('stderr', '')}", flush=True)
    if bad:
        fail(f"{bad} of {len(keys)} run configs failed the system-only check")
    print(f"all {len(keys)} run configs passed the system-only check")


def cell_stats(runs: list, metric: str, target: float) -> dict | None:
    """Time / energy / bytes to `target` of `metric` and its final value, over seeds (None when
    no run logs the metric, e.g. node percentiles of FL runs)."""
    if not any(r.get(metric) is not None for rows in runs for r in rows):
        return None
    hits = [reach(rows, metric, target) for rows in runs]
    out = {"target": target, "horizon_s": min(h.horizon_s for h in hits)}
    for name, vals in (
        ("time_s", [h.time_s for h in hits]),
        ("energy_j", [h.energy_j for h in hits]),
        ("bytes", [h.bytes for h in hits]),
        ("final", [rows[-1].get(metric) for rows in runs]),
    ):
        s = summarize(vals)
        out[name] = {
            "median": s.median,
            "lo": s.lo,
            "hi": s.hi,
            "censored": s.censored,
            "values": list(s.values),
            "text": fmt(s, *FMT[name]),
        }
    return out


def aggregate(spec: dict, out: Path) -> tuple:
    """Per cell and metric (the main one, then `extra_metrics`): `cell_stats` over seeds; also
    returns the rows read, by (task, server, algorithm), so the figures show the same seeds."""
    metrics = [spec["metric"], *spec.get("extra_metrics", [])]
    rows, by = [], {}
    for c in cells(spec, spec.get("only")):
        row = {"task": c.task, "server": c.server, "algorithm": c.algorithm, "note": c.note}
        runs = []
        for s in range(spec["seeds"]) if c.run_key else []:
            d = out / "runs" / c.run_key / f"seed{s}"
            if is_done(d, run_key(command(spec, c.run_key, s, d))):
                try:
                    runs.append(read_metrics(d / "metrics.jsonl"))
                except RunReadError as e:
                    fail(str(e))
        if c.run_key:
            by[(c.task, c.server, c.algorithm)] = runs
        row["n"] = len(runs)
        target = spec["tasks"][c.task]["target"]
        row["metrics"] = {m: cell_stats(runs, m, target) for m in metrics} if runs else {}
        rows.append(row)
    return rows, by


def table(spec: dict, rows: list, metric: str) -> str:
    """Markdown table of one metric; cells that do not log it are left out (extra metrics)."""
    head = (
        f"Suite `{spec['scale']}`: {spec['seeds']} seeds per cell, metric `{metric}`; "
        "median [95% bootstrap interval]; 'cens.' = target not reached within the horizon.\n\n"
        "| task (target) | server | algorithm | time to target | energy to target | "
        "bytes to target | final | note |\n|---|---|---|---|---|---|---|---|\n"
    )
    main = metric == spec["metric"]
    lines = []
    for r in rows:
        st = r["metrics"].get(metric)
        if st is None:
            if main:
                note = r["note"] or "not run"
                lines.append(
                    f"| {r['task']} | {r['server']} | {r['algorithm']} | - | - | - | - | {note} |"
                )
            continue
        t = {k: st[k]["text"] for k in FMT}
        lines.append(
            f"| {r['task']} ({st['target']}) | {r['server']} | {r['algorithm']} | {t['time_s']} | "
            f"{t['energy_j']} | {t['bytes']} | {t['final']} | {r['note']} |"
        )
    return head + "\n".join(lines) + "\n"


def figures(spec: dict, by: dict, out: Path) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dl.analysis.figures import band_plot, save

    paths = []
    only = spec.get("only") or {}
    tasks = only.get("tasks") or list(spec["tasks"])
    servers = only.get("servers") or list(spec["servers"])
    for task in tasks:
        fig, axes = plt.subplots(
            2, len(spec["servers"]), figsize=(4.2 * len(spec["servers"]), 7), squeeze=False
        )
        for j, server in enumerate(servers):
            curves = {a: by.get((task, server, a), []) for a in spec["algorithms"]}
            band_plot(axes[0, j], curves, "virtual_time_s", spec["metric"])
            band_plot(axes[1, j], curves, "energy_j", spec["metric"])
            axes[0, j].set_title(f"{task}, server {server}", fontsize=9)
        p = out / f"{task}.png"
        save(fig, p)
        plt.close(fig)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scale_kv", nargs="?", help="scale=<name> (same as --scale)")
    ap.add_argument("--scale", default=None)
    ap.add_argument("--seeds", type=int, default=None, help="override the scale's seed count")
    ap.add_argument("--jobs", type=int, default=None, help="runs in parallel (local)")
    ap.add_argument("--launcher", default=None, help="Hydra launcher (joblib, slurm_gpu)")
    ap.add_argument("--out", default=None, help="default results/suite/<scale>")
    for kind in ("tasks", "servers", "algorithms"):
        ap.add_argument(f"--{kind}", nargs="*", default=None, help=f"only these {kind}")
    ap.add_argument("--aggregate-only", action="store_true")
    ap.add_argument(
        "--readme",
        action="store_true",
        help="replace README.md's block <!-- suite:<scale>:begin/end --> with the tables",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument(
        "--check",
        action="store_true",
        help="validate every run's config: seed 0, system-only (sim.train=false), 2 evaluations",
    )
    a = ap.parse_args()
    scale = a.scale or (a.scale_kv.split("=", 1)[-1] if a.scale_kv else None)
    if not scale:
        fail("which scale? --scale smoke|cpu|gpu")
    spec = load_scale(scale)
    if a.seeds is not None:
        if a.seeds < 1:
            fail(f"--seeds must be >= 1, got {a.seeds}")
        spec["seeds"] = a.seeds
    spec["only"] = {}
    for kind in ("tasks", "servers", "algorithms"):
        names = getattr(a, kind)
        if names:
            bad = sorted(set(names) - set(spec[kind]))
            if bad:
                fail(f"--{kind}: {', '.join(bad)} not in scale {scale} ({', '.join(spec[kind])})")
            spec["only"][kind] = names
    out = Path(a.out) if a.out else REPO / "results" / "suite" / scale
    t = time.perf_counter()
    if a.check:
        check(spec, out / "check")
        return
    if not a.aggregate_only:
        recs = run_all(spec, out, a.jobs or spec["jobs"], a.launcher, a.dry_run)
        if a.dry_run:
            return
        bad = [r for r in recs if "failed" in str(r.get("status", "")) or r.get("rc")]
        (out / "runs").mkdir(parents=True, exist_ok=True)
        (out / "runs.json").write_text(json.dumps(recs, indent=1))
        if bad:
            fail(f"{len(bad)} run(s) failed, e.g. {bad[0].get('dir')}: {bad[0].get('stderr')}")
    rows, by = aggregate(spec, out)
    meta = {
        "scale": scale,
        "seeds": spec["seeds"],
        "metric": spec["metric"],
        "wall_s": round(time.perf_counter() - t, 1),
        "cells": rows,
    }
    (out / "summary.json").write_text(json.dumps(meta, indent=1))
    text = "\n".join(table(spec, rows, m) for m in [spec["metric"], *spec.get("extra_metrics", [])])
    (out / "table.md").write_text(text)
    figs = figures(spec, by, out)
    print(text)
    if a.readme:
        from dl.analysis.readme import replace_block

        def rel(f):
            return f.relative_to(REPO) if f.is_relative_to(REPO) else f

        block = text + "\n" + "\n".join(f"![{f.stem}]({rel(f)})" for f in figs)
        if not replace_block(REPO / "README.md", f"suite:{scale}", block):
            fail(f"README.md has no <!-- suite:{scale}:begin --> ... end block")
    print(f"wrote {out / 'summary.json'}, {out / 'table.md'}, {', '.join(str(f) for f in figs)}")


if __name__ == "__main__":
    main()
