"""Outage recovery: DWA vs. FedAsync vs. gossip learning with the server down mid-run (issue 4).

    python scripts/fig_outage.py [--algs dwa fedasync gossip] [--runs outputs/outage] \
        [--out results] [--dense-s 20] [--plot-only] [--force] [--measure] [overrides ...]

Runs `python -m dl.run experiment=outage_{dwa,fedasync,gossip} <overrides>` (conf/experiment/
outage_*.yaml: Fashion-MNIST, small CNN, STUNner availability + FLASH devices,
`server=outage_mid`, i.e. down for the middle half [D/4, 3D/4) of a run of D virtual seconds)
into <runs>/<alg>, through `dl.analysis.launch` (a folder holding the same command completed is
reused unless --force; the overrides are checked as dl.run checks them before anything runs).
Rows on the regular grid (every `sim.eval_every_s`: server model and `sim.eval_nodes` node
models) are tagged `eval: full`. For the server algorithms the run also evaluates every second
for `--dense-s` seconds after the server returns (`sim.eval_windows`, the host loop's dense
window); those rows, tagged `eval: server` (node metrics dropped), show "the server catches up
within a few uploads" on the server's upload counter (`updates_applied`).

Checks (results/outage.json): during the outage FedAsync's server model is frozen and DWA's node
models keep improving (node accuracy p90 / max / mean at the outage start vs. its end); after
the return DWA's server reaches the best node models (p90 at the return) within how many uploads,
and node models are not pulled back (p90 / max after vs. at the return); time to 80% (and 75%,
70%) test accuracy of each curve (server model for dwa/fedasync, node mean for gossip).
`--measure` instead times a few quanta of each algorithm at 1,000 and 200 nodes (the sizing
measurement behind the configs) and writes results/outage_sizing.json.
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dl.algorithms.base import make_runner  # noqa: E402
from dl.analysis.launch import compose, run_checked  # noqa: E402
from dl.analysis.runs import RunReadError, read_run  # noqa: E402
from dl.analysis.targets import first_reaching  # noqa: E402
from dl.build import build  # noqa: E402
from dl.errors import ConfigError  # noqa: E402
from dl.train.mapping import resolve_strategy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ALGS = ("dwa", "fedasync", "gossip")
TARGETS = (0.80, 0.75, 0.70)
COLORS = {"dwa": "C2", "fedasync": "C1", "gossip": "C0"}
SERVER_ALGS = ("dwa", "fedasync")  # evaluated every second after the server returns


def run_overrides(alg: str, overrides: list[str]) -> list[str]:
    return [f"experiment=outage_{alg}", "logger=disabled", "sim.progress=false", *overrides]


def compose_cfg(alg: str, overrides: list[str]) -> dict:
    """The config `dl.run` would run for `alg` (a bad override: one ConfigError line)."""
    return compose(run_overrides(alg, overrides))


def outage_window(cfg: dict) -> tuple[float, float]:
    ((a, b),) = cfg["server"]["outages"]
    return float(a), float(b)


def launch(alg: str, overrides: list[str], run_dir: Path, force: bool) -> None:
    cmd = [sys.executable, "-m", "dl.run", *run_overrides(alg, overrides)]
    cmd.append(f"hydra.run.dir={run_dir}")
    shown = " ".join(shlex.quote(c) for c in ["python"] + cmd[1:])
    rec = run_checked(cmd, run_dir, ROOT, key=shown, force=force)
    print(
        f"[{alg}] {rec['status']}: {shown}"
        + (f" ({rec['wall_s']:.0f} s)" if "wall_s" in rec else ""),
        flush=True,
    )


def dense_window(alg: str, cfg: dict, dense_s: float) -> list[str]:
    """The override adding 1-s evaluations over [t_up, t_up + dense_s] (server algorithms)."""
    if dense_s <= 0 or alg not in SERVER_ALGS:
        return []
    _, t_up = outage_window(cfg)
    return [f"sim.eval_windows=[[{float(t_up)},{float(t_up + dense_s)},1]]"]


def on_grid(t: float, sim: dict) -> bool:
    """A regular evaluation time (a multiple of sim.eval_every_s, or the end of the run)."""
    k = t / float(sim["eval_every_s"])
    return abs(k - round(k)) < 1e-6 or abs(t - float(sim["duration_s"])) < 1e-3


def run_overrides_of(run_dir: Path) -> list[str] | None:
    """The overrides a run was started with beyond the experiment's (Hydra's record)."""
    try:
        saved = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return None
    fixed = run_overrides("", [])[1:]
    own = ("experiment=", "hydra.", "sim.eval_windows=")  # set by this script
    return [o for o in saved if not o.startswith(own) and o not in fixed]


def load(alg: str, cfg: dict, runs: Path) -> tuple[list[dict], dict]:
    """The run's rows, tagged `eval`: full on the regular grid, server in the dense window
    (node metrics dropped), and what the JSON says about the run."""
    run = read_run(runs / alg)
    rows = []
    for r in run.rows:
        if "eval" not in r and not on_grid(r["virtual_time_s"], cfg["sim"]):
            r = {k: v for k, v in r.items() if not k.startswith("node_")} | {"eval": "server"}
        rows.append({"eval": "full"} | r)  # runs of the earlier in-process loop: tagged
    t_down, t_up = outage_window(cfg)
    meta = {
        "alg": alg,
        "num_nodes": int(cfg["sim"]["num_nodes"]),
        "duration_s": float(cfg["sim"]["duration_s"]),
        "outage": [t_down, t_up],
        "eval_windows": cfg["sim"].get("eval_windows"),
        "wall_time_s": rows[-1]["wall_time_s"],
        "local_steps": cfg["task"]["train"]["local_steps"],
        "strategy": run.summary.get("strategy"),
        "overrides": run_overrides_of(runs / alg),
    }
    return rows, meta


def at(rows: list[dict], t: float, key: str):
    """Value of `key` in the full evaluation at virtual time t (None if absent)."""
    for r in rows:
        if abs(r["virtual_time_s"] - t) < 1e-3 and key in r:
            return r[key]
    return None


def time_to(rows: list[dict], key: str, target: float):
    """Virtual time of the first row whose `key` reaches `target` (dl.analysis.targets)."""
    i = first_reaching(rows, key, target)
    return None if i is None else rows[i]["virtual_time_s"]


def analyse(data: dict, t_down: float, t_up: float, every: float) -> dict:
    out: dict = {"outage_s": [t_down, t_up]}
    for alg, rows in data.items():
        full = [r for r in rows if r["eval"] == "full"]
        a = {
            "final_test_accuracy": full[-1]["test_accuracy"],
            "test_accuracy_at_outage_start": at(full, t_down, "test_accuracy"),
            "test_accuracy_at_outage_end": at(full, t_up, "test_accuracy"),
            "wall_time_s": rows[-1]["wall_time_s"],
        }
        for target in TARGETS:
            a[f"time_to_{target:.2f}_s"] = time_to(full, "test_accuracy", target)
            if "node_accuracy_p90" in full[0]:
                a[f"node_p90_time_to_{target:.2f}_s"] = time_to(full, "node_accuracy_p90", target)
        for k in ("arrivals_deferred", "trainings_deferred", "updates_lost", "messages_lost"):
            if k in rows[-1]:
                a[k] = rows[-1][k]
        if "node_accuracy_p90" in full[0]:
            for k in ("node_accuracy_mean", "node_accuracy_p90", "node_accuracy_max"):
                a[f"{k}_at_outage_start"] = at(full, t_down, k)
                a[f"{k}_at_outage_end"] = at(full, t_up, k)
                a[f"{k}_after_return"] = [at(full, t_up + i * every, k) for i in (1, 2, 3)]
        out[alg] = a
    fa = out.get("fedasync")
    if fa:
        during = [
            r["test_accuracy"]
            for r in data["fedasync"]
            if t_down + 1.0 <= r["virtual_time_s"] <= t_up and r["eval"] == "full"
        ]
        fa["server_frozen_during_outage"] = bool(
            during
            and max(during) - min(during) < 1e-6
            and abs(during[0] - (fa["test_accuracy_at_outage_start"] or -1)) < 0.05
        )
        fa["server_accuracy_range_during_outage"] = [min(during), max(during)] if during else None
    d = out.get("dwa")
    if d:
        rows = data["dwa"]
        d["nodes_improve_during_outage"] = {
            k: (d[f"{k}_at_outage_end"] or 0) - (d[f"{k}_at_outage_start"] or 0)
            for k in ("node_accuracy_mean", "node_accuracy_p90", "node_accuracy_max")
        }
        ref_p90, ref_max = (
            d["node_accuracy_p90_at_outage_end"],
            d["node_accuracy_max_at_outage_end"],
        )
        applied0 = at(rows, t_up, "updates_applied")
        catch = {}
        for name, ref in (("p90", ref_p90), ("max_minus_0.01", ref_max - 0.01), ("max", ref_max)):
            after = [r for r in rows if r["virtual_time_s"] > t_up + 1e-3]
            i = first_reaching(after, "test_accuracy", ref)
            hit = None if i is None else after[i]
            catch[name] = (
                None
                if hit is None
                else {
                    "reference_accuracy": ref,
                    "virtual_s_after_return": hit["virtual_time_s"] - t_up,
                    "uploads_after_return": hit["updates_applied"] - applied0,
                    "server_accuracy": hit["test_accuracy"],
                }
            )
        d["server_catch_up"] = catch
        d["server_after_return"] = [
            {
                "dt_s": r["virtual_time_s"] - t_up,
                "uploads": r["updates_applied"] - applied0,
                "test_accuracy": r["test_accuracy"],
                "server_age": r.get("server_age"),
            }
            for r in rows
            if t_up - 1e-3 <= r["virtual_time_s"] <= t_up + 3 * every + 1e-3
        ]
        d["nodes_pulled_back"] = {
            k: min(v for v in d[f"{k}_after_return"] if v is not None) - d[f"{k}_at_outage_end"]
            for k in ("node_accuracy_p90", "node_accuracy_max")
        }
    if fa and d:
        inf = float("inf")
        verdict = {}
        for target in TARGETS:
            tf, td = fa[f"time_to_{target:.2f}_s"], d[f"time_to_{target:.2f}_s"]
            verdict[f"{target:.2f}"] = {
                "fedasync_s": tf,
                "dwa_s": td,
                "fedasync_ge_dwa": (inf if tf is None else tf) >= (inf if td is None else td),
            }
        out["time_to_accuracy_fedasync_ge_dwa"] = verdict
    return out


def plot(data: dict, t_down: float, t_up: float, out: Path, what: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100, gridspec_kw={"width_ratios": [1.6, 1]})
    for ax, zoom in zip(axes, (False, True)):
        ax.axvspan(t_down, t_up, color="0.9", label="server down" if not zoom else None)
        for alg, rows in data.items():
            c = COLORS[alg]
            full = [r for r in rows if r["eval"] == "full"]
            srv = rows if zoom else full
            lab = {
                "dwa": "DWA server",
                "fedasync": "FedAsync server",
                "gossip": "gossip node mean",
            }[alg]
            ax.plot(
                [r["virtual_time_s"] for r in srv],
                [r["test_accuracy"] for r in srv],
                color=c,
                lw=1.7,
                marker="." if zoom else None,
                ms=3,
                label=lab,
            )
            if "node_accuracy_p90" in full[0]:
                ax.plot(
                    [r["virtual_time_s"] for r in full],
                    [r["node_accuracy_p90"] for r in full],
                    color=c,
                    ls="--",
                    lw=1.1,
                    label=f"{alg} node p90",
                )
                if alg == "dwa":
                    ax.plot(
                        [r["virtual_time_s"] for r in full],
                        [r["node_accuracy_max"] for r in full],
                        color=c,
                        ls=":",
                        lw=1.1,
                        label="dwa node max",
                    )
        ax.axhline(0.8, color="gray", lw=0.6, ls=":")
        ax.set_xlabel("virtual time (s)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_xlim(t_up - 40, t_up + 100)
            lo = min(
                r["test_accuracy"]
                for rs in data.values()
                for r in rs
                if t_up - 40 <= r["virtual_time_s"] <= t_up + 100
            )
            ax.set_ylim(max(0.0, lo - 0.03), None)
            ax.set_title("after the server returns (1-s server evals)", fontsize=9)
        else:
            ax.set_ylim(0.3, None)
            ax.legend(fontsize=7, loc="lower right")
            ax.set_title(f"Fashion-MNIST {what}, STUNner, server down mid-run", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


MEASURE_CASES = [  # (algorithm, nodes, overrides) timed by --measure
    ("fedasync", 1000, ["server=always"]),
    ("dwa", 1000, ["server=always"]),
    ("dwa", 1000, ["server=never"]),
    ("fedasync", 200, ["server=always"]),
    ("dwa", 200, ["server=always"]),
    ("dwa", 200, ["server=never"]),
]


def measure_overrides(alg: str, n: int, extra: list[str]) -> list[str]:
    base = ["task.train.local_steps=5", "algorithm.max_arrivals=12", *extra, f"sim.num_nodes={n}"]
    return base + ["algorithm.max_trainings=28" if alg == "dwa" else "sim.eval_nodes=10"]


def measure(out: Path) -> None:
    """Wall seconds per 1-s quantum (after compile + 2 warm quanta) per algorithm and N: the
    engine's chunks alone (built by dl.build / dl.algorithms), no evaluation or logging."""
    rows = []
    for alg, n, extra in MEASURE_CASES:
        ov = measure_overrides(alg, n, extra)
        cfg = compose_cfg(alg, ov)
        b = build(cfg)
        r = make_runner(cfg, b, resolve_strategy("auto", cfg["task"]["model"]))
        st, key = r.init, jax.random.key(0)
        t0 = time.perf_counter()
        st = jax.block_until_ready(r.chunk(st, key, 2.0))
        comp = time.perf_counter() - t0
        t0 = time.perf_counter()
        st = jax.block_until_ready(r.chunk(st, key, 6.0))
        rows.append(
            {
                "alg": alg,
                "nodes": n,
                "overrides": ov,
                "compile_and_warm_s": comp,
                "wall_s_per_quantum": (time.perf_counter() - t0) / 4.0,
            }
        )
        print(rows[-1], flush=True)
    out.write_text(json.dumps(rows, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algs", nargs="+", default=list(ALGS))
    ap.add_argument("--runs", type=Path, default=ROOT / "outputs" / "outage")
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--dense-s", type=float, default=20.0)
    ap.add_argument("--plot-only", action="store_true", help="only read runs already on disk")
    ap.add_argument("--force", action="store_true", help="rerun even if a run is completed")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.measure:
        measure(args.out / "outage_sizing.json")
        return
    try:  # --plot-only: each run's own config; else every config checked before any run
        cfgs = {}
        for a in args.algs:
            if args.plot_only:
                cfgs[a] = read_run(args.runs / a).config
                continue
            over = args.overrides + dense_window(a, compose_cfg(a, args.overrides), args.dense_s)
            cfgs[a] = compose_cfg(a, over)
    except (ConfigError, RunReadError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    data, runs = {}, {}
    for alg in args.algs:
        if not args.plot_only:
            over = args.overrides + dense_window(alg, cfgs[alg], args.dense_s)
            launch(alg, over, args.runs / alg, args.force)
        data[alg], runs[alg] = load(alg, cfgs[alg], args.runs)
    cfg = cfgs[args.algs[0]]
    t_down, t_up = outage_window(cfg)
    res = analyse(data, t_down, t_up, float(cfg["sim"]["eval_every_s"]))
    res["command"] = "python scripts/fig_outage.py " + " ".join(sys.argv[1:])
    res["runs"] = runs
    (args.out / "outage.json").write_text(json.dumps(res, indent=1))
    what = f"{cfg['task']['model']}, {cfg['sim']['num_nodes']} nodes"
    plot(data, t_down, t_up, args.out / "outage.png", what)
    print(json.dumps({k: v for k, v in res.items() if k not in ("runs",)}, indent=1)[:4000])


if __name__ == "__main__":
    main()
