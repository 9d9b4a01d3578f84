"""The hybrid (DWA), studied (issue 13): its knobs, the server's return, the split, and the
outage length at which gossip's progress shows, against FedAsync with the same server rule.

    python scripts/study_dwa.py                   # runs missing seeds (jobs=2), then aggregates
    python scripts/study_dwa.py --aggregate-only --readme   # tables/figures + README block

Task: UCI pendigits + logistic regression on 100 STUNner phones (FLASH speeds, WiFi energy),
the cpu suite's base, 8 virtual hours evaluated every 60 s (to see the return), target 0.85.
The server goes down at 15 min (FedAsync is then at ~0.82) for 0.5, 1, 2 or 4 h. DWA and
FedAsync share the server settings (concurrency 20, <= 8 uploads per 1-s quantum); with the
server up DWA is FedAsync bit for bit. Runs go to `outputs/dwa_study/runs/<cell>/seed<k>`
(not committed); per-seed values, medians and 95% bootstrap intervals go to
`results/dwa_study/summary.json`, tables to `table.md`, figures to `*.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dl.analysis.launch import is_done, run_cached  # noqa: E402
from dl.analysis.runs import read_metrics  # noqa: E402
from dl.analysis.stats import fmt, summarize  # noqa: E402
from dl.analysis.targets import reach  # noqa: E402

SEEDS, TARGET, START_S, HORIZON_S = 5, 0.85, 900, 28800
BASE = [
    "trace=stunner", "energy=wifi", "task=pendigits_logreg", "sim.num_nodes=100",
    f"sim.duration_s={HORIZON_S}", "sim.eval_every_s=60", "sim.progress=false",
    "logger=disabled", "server=outage_2h", "algorithm.concurrency=20", "algorithm.max_arrivals=8",
]  # fmt: skip
ALG = {
    "fedasync": ["algorithm=fedasync"],
    "dwa": ["algorithm=dwa", "algorithm.max_trainings=4", "algorithm.period_s=60"],
}
OUTAGES_H = (0.5, 1.0, 2.0, 4.0)
KNOBS = ((1.0, 1.0), (0.5, 1.0), (0.8, 1.0), (1.0, 0.5), (1.0, 2.0))  # (lam_max, nu)


def cell_name(alg: str, out_h: float, part: str = "iid", lam=1.0, nu=1.0) -> str:
    """Run-folder name of one configuration, e.g. `dwa_out2h_iid_lam0.8_nu1`."""
    s = f"{alg}_out{out_h:g}h_{part}"
    return s + (f"_lam{lam:g}_nu{nu:g}" if alg == "dwa" else "")


def grid() -> dict:
    """Every configuration: name -> {alg, out_h, part, lam, nu}; shared cells appear once."""
    g = {}

    def add(alg, out_h, part="iid", lam=1.0, nu=1.0):
        c = dict(alg=alg, out_h=out_h, part=part, lam=lam, nu=nu)
        g[cell_name(alg, out_h, part, lam, nu)] = c

    for h in OUTAGES_H:  # outage length: DWA vs FedAsync
        add("dwa", h), add("fedasync", h)
    for lam, nu in KNOBS:  # the knobs, at the 2-h outage
        add("dwa", 2.0, lam=lam, nu=nu)
    for alg in ALG:  # IID vs Dirichlet(0.5), at the 2-h outage
        add(alg, 2.0, "dir")
    return g


def overrides(c: dict, seed: int) -> list:
    ov = BASE + ALG[c["alg"]]
    ov.append(f"server.outages=[[{START_S},{START_S + int(c['out_h'] * 3600)}]]")
    if c["part"] == "dir":
        ov += ["task.partition.scheme=dirichlet", "task.partition.alpha=0.5"]
    if c["alg"] == "dwa":
        ov += [f"algorithm.lam_max={c['lam']}", f"algorithm.nu={c['nu']}"]
    return ov + [f"seed={seed}"]


def return_effect(rows, t_ret: float, window_s: float = 1200.0, key="test_accuracy") -> dict:
    """The server model around its return at `t_ret`: `pre` = last value before t_ret (the
    model frozen by the outage); over the evaluations in [t_ret, t_ret + window_s]: `first`
    (at t_ret: the first quantum's uploads included), `low`/`high`, `dip` = pre - low (> 0:
    pulled below its pre-outage value), `drawdown` = the largest fall from one evaluation to a
    later one (the swing: points lost to stale uploads after a gain), `end` = the value at the
    window's end; `frontier_p90`/`frontier_max`: the node sample's 90th percentile and best
    model at the last evaluation before the return (gossip's frontier; DWA only)."""
    before = [r for r in rows if r["virtual_time_s"] < t_ret and r.get(key) is not None]
    post = [r[key] for r in rows if t_ret <= r["virtual_time_s"] <= t_ret + window_s]
    if not before or not post:
        return {}
    pre, last = before[-1][key], before[-1]
    peak, drawdown = post[0], 0.0
    for v in post:  # running peak -> largest later fall
        peak, drawdown = max(peak, v), max(drawdown, peak - v)
    return {
        "pre": pre,
        "first": post[0],
        "low": min(post),
        "high": max(post),
        "dip": pre - min(post),
        "drawdown": drawdown,
        "end": post[-1],
        "frontier_p90": last.get("node_accuracy_p90"),
        "frontier_max": last.get("node_accuracy_max"),
    }


def measure(rows, c: dict) -> dict:
    """Per-run numbers: time/energy to TARGET (None = censored), final accuracy, return effect."""
    h = reach(rows, "test_accuracy", TARGET)
    return {
        "time_s": h.time_s,
        "energy_j": h.energy_j,
        "final": rows[-1].get("test_accuracy"),
        **{f"ret_{k}": v for k, v in return_effect(rows, START_S + c["out_h"] * 3600).items()},
    }


def summarize_cell(per_seed: list) -> dict:
    """Median [95% bootstrap interval] over seeds of every per-run number."""
    out = {"n": len(per_seed)}
    for k in per_seed[0] if per_seed else []:
        vals = [m.get(k) for m in per_seed]
        if k.startswith("ret_") and any(v is None for v in vals):
            continue  # e.g. no node sample (FedAsync)
        s = summarize(vals)
        out[k] = {"median": s.median, "lo": s.lo, "hi": s.hi, "censored": s.censored,
                  "values": list(s.values)}  # fmt: skip
    return out


def paired(a: list, b: list, key: str) -> dict | None:
    """Median [interval] of the per-seed difference a - b (same seed, same trace); None when a
    value is missing or censored."""
    d = [x.get(key) - y.get(key) for x, y in zip(a, b) if None not in (x.get(key), y.get(key))]
    if len(d) < len(a) or not d or any(math.isinf(v) for v in d):
        return None
    s = summarize(d)
    return {"median": s.median, "lo": s.lo, "hi": s.hi, "values": list(s.values)}


def txt(st: dict | None, unit="", scale=1.0, digits=3) -> str:
    if not st:
        return "-"
    from dl.analysis.stats import Summary

    s = Summary(len(st["values"]), st.get("censored", 0), st["median"], st["lo"], st["hi"], ())
    return fmt(s, unit, scale, digits)


def tables(res: dict) -> str:
    """The three markdown tables of the study from `summary.json`'s `cells` and `paired`."""
    cells, pr = res["cells"], res["paired"]
    T, E, A = (" min", 60.0, 0), (" kJ", 1e3, 0), ("", 1.0, 3)
    head = (
        f"pendigits logistic, 100 STUNner phones, {HORIZON_S // 3600} h, server down from "
        f"{START_S // 60} min; {res['seeds']} seeds per cell, median [95% bootstrap interval]; "
        f"'cens.' = {TARGET} not reached in the horizon. Return: server accuracy just before "
        "it (`pre`), at it (first quantum, `first`), lowest in the 20 min after (`low`), largest "
        "fall after a gain in those 20 min (`drawdown`).\n\n"
    )
    t1 = (
        "| outage | algorithm | time to 0.85 | energy to 0.85 | final | pre | first | low | "
        "drawdown |\n" + "|---" * 9 + "|\n"
    )
    for h in OUTAGES_H:
        for alg in ALG:
            c = cells.get(cell_name(alg, h), {})
            t1 += (f"| {h:g} h | {alg} | {txt(c.get('time_s'), *T)} | "
                   f"{txt(c.get('energy_j'), *E)} | "
                   f"{txt(c.get('final'), *A)} | {txt(c.get('ret_pre'), *A)} | "
                   f"{txt(c.get('ret_first'), *A)} | {txt(c.get('ret_low'), *A)} | "
                   f"{txt(c.get('ret_drawdown'), *A)} |\n")  # fmt: skip
    t1 += (
        "\n| DWA - FedAsync, same seed | server accuracy at the return | time to 0.85 | "
        "energy to 0.85 |\n|---|---|---|---|\n"
    )
    for name, d in pr.items():
        t1 += (f"| {name.replace('_', ', ')} | {txt(d.get('ret_first'), *A)} | "
               f"{txt(d.get('time_s'), ' min', 60.0, 1)} | "
               f"{txt(d.get('energy_j'), *E)} |\n")  # fmt: skip
    t2 = (
        "\n| DWA knobs (2-h outage) | time to 0.85 | final | first | low | drawdown | "
        "best sampled node before return |\n" + "|---" * 7 + "|\n"
    )
    for lam, nu in KNOBS:
        c = cells.get(cell_name("dwa", 2.0, lam=lam, nu=nu), {})
        t2 += (f"| lam_max={lam:g}, nu={nu:g} | {txt(c.get('time_s'), *T)} | "
               f"{txt(c.get('final'), *A)} | "
               f"{txt(c.get('ret_first'), *A)} | {txt(c.get('ret_low'), *A)} | "
               f"{txt(c.get('ret_drawdown'), *A)} | "
               f"{txt(c.get('ret_frontier_max'), *A)} |\n")  # fmt: skip
    t3 = "\n| split (2-h outage) | algorithm | time to 0.85 | final | first | low |\n" \
         "|---|---|---|---|---|---|\n"  # fmt: skip
    for part in ("iid", "dir"):
        for alg in ALG:
            c = cells.get(cell_name(alg, 2.0, part), {})
            t3 += (f"| {'IID' if part == 'iid' else 'Dirichlet(0.5)'} | {alg} | "
                   f"{txt(c.get('time_s'), *T)} | {txt(c.get('final'), *A)} | "
                   f"{txt(c.get('ret_first'), *A)} | {txt(c.get('ret_low'), *A)} |\n")  # fmt: skip
    return head + t1 + t2 + t3


def aggregate(runs: dict, seeds: int) -> dict:
    """`runs`: cell name -> list of metric rows per seed (in seed order). Returns summary.json."""
    g = grid()
    per = {k: [measure(rows, g[k]) for rows in runs.get(k, [])] for k in g}
    cells = {k: dict(summarize_cell(v), **g[k]) for k, v in per.items() if v}
    pr = {}  # DWA - FedAsync, same seed (same trace and data): return, time, energy
    for h, part in [(h, "iid") for h in OUTAGES_H] + [(2.0, "dir")]:
        a, b = per.get(cell_name("dwa", h, part), []), per.get(cell_name("fedasync", h, part), [])
        if a and len(a) == len(b):
            pr[f"{h:g}h_{part}"] = {k: paired(a, b, k) for k in ("ret_first", "time_s", "energy_j")}
    return {"seeds": seeds, "target": TARGET, "cells": cells, "paired": pr, "per_seed": per}


def figures(runs: dict, out: Path) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dl.analysis.figures import band_plot, save

    fig, axes = plt.subplots(1, len(OUTAGES_H), figsize=(4.2 * len(OUTAGES_H), 3.6))
    for ax, h in zip(axes, OUTAGES_H):
        band_plot(ax, {a: runs.get(cell_name(a, h), []) for a in ALG}, "virtual_time_s",
                  "test_accuracy")  # fmt: skip
        ax.axvspan(START_S, START_S + h * 3600, color="grey", alpha=0.15)
        ax.set_ylim(0.75, 0.9)
        ax.set_title(f"server down {h:g} h (grey)", fontsize=9)
    fig2, ax2 = plt.subplots(1, 1, figsize=(6, 3.6))
    t_ret = START_S + 2 * 3600
    zoom = {f"lam_max={lm:g}, nu={nu:g}": [[r for r in rows if t_ret - 600 <= r["virtual_time_s"]
            <= t_ret + 1800] for rows in runs.get(cell_name("dwa", 2.0, lam=lm, nu=nu), [])]
            for lm, nu in KNOBS}  # fmt: skip
    band_plot(ax2, zoom, "virtual_time_s", "test_accuracy")
    ax2.axvline(t_ret, color="grey", ls="--")
    ax2.set_title("DWA server model around the return after a 2-h outage", fontsize=9)
    paths = [out / "outage_length.png", out / "return_knobs.png"]
    for f, p in zip((fig, fig2), paths):
        save(f, p)
        plt.close(f)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", default=str(REPO / "outputs" / "dwa_study" / "runs"))
    ap.add_argument("--out", default=str(REPO / "results" / "dwa_study"))
    ap.add_argument("--aggregate-only", action="store_true")
    ap.add_argument("--readme", action="store_true", help="rewrite README's dwa-study block")
    a = ap.parse_args()
    if a.seeds < 1 or a.jobs < 1:
        print("error: --seeds and --jobs must be >= 1", file=sys.stderr)
        sys.exit(2)
    runs_dir, out, g = Path(a.runs), Path(a.out), grid()
    t0, recs = time.perf_counter(), []
    if not a.aggregate_only:
        todo = [(k, s) for s in range(a.seeds) for k in g]  # seed-major: early seeds first
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:

            def one(ks):
                k, s = ks
                ov = overrides(g[k], s) + [f"hydra.run.dir={runs_dir / k / f'seed{s}'}"]
                cmd = ["nice", "-n", "5", sys.executable, "-m", "dl.run", *ov]
                return run_cached(cmd, runs_dir / k / f"seed{s}", REPO, key=" ".join(ov))

            for r in pool.map(one, todo):
                recs.append(r)
                print(f"{r['status']:18s} {r.get('wall_s', ''):>7} {r['dir']}", flush=True)
        bad = [r for r in recs if r["status"].startswith("failed")]
        if bad:
            print(f"error: {len(bad)} run(s) failed, e.g. {bad[0]}", file=sys.stderr)
            sys.exit(1)
    runs = {}
    for k in g:
        ds = [runs_dir / k / f"seed{s}" for s in range(a.seeds)]
        runs[k] = [read_metrics(d / "metrics.jsonl") for d in ds if is_done(d)]
    res = aggregate(runs, a.seeds)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    walls = out / "runs.json"  # wall s per run folder, kept across --aggregate-only calls
    known = json.loads(walls.read_text()) if walls.is_file() else {}
    known.update({Path(r["dir"]).relative_to(runs_dir).as_posix(): r["wall_s"] for r in recs
                  if "wall_s" in r})  # fmt: skip
    walls.write_text(json.dumps(known, indent=1, sort_keys=True))
    (out / "summary.json").write_text(json.dumps(res, indent=1))
    text = tables(res)
    (out / "table.md").write_text(text)
    figs = figures(runs, out)
    print(text)
    if a.readme:
        from dl.analysis.readme import replace_block

        block = text + "\n" + "\n".join(f"![{f.stem}]({f.relative_to(REPO)})" for f in figs)
        if not replace_block(REPO / "README.md", "dwa-study", block):
            print("error: README.md has no <!-- dwa-study:begin --> block", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
