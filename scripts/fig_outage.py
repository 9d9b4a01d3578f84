"""Outage recovery: DWA vs. FedAsync vs. gossip learning with the server down mid-run (issue 4).

    python scripts/fig_outage.py [--algs dwa fedasync gossip] [--runs outputs/outage] \
        [--out results] [--plot-only] [--measure] [overrides ...]

Runs `experiment=outage_{dwa,fedasync,gossip}` (conf/experiment/outage_*.yaml: Fashion-MNIST,
small CNN, STUNner availability + FLASH devices, `server=outage_mid`, i.e. down for the middle
half [D/4, 3D/4) of a run of D virtual seconds) in this process, with the same builder, runner
chunks, evaluation and seed as `python -m dl.run experiment=outage_<alg>`; the only difference is
the evaluation schedule: the regular grid (every `sim.eval_every_s`, full evaluation: server model
and `sim.eval_nodes` node models) plus a dense server-only evaluation every second for
`--dense-s` seconds after the server returns, so that "the server catches up within a few
uploads" can be read off with the server's upload counter (`updates_applied`). Metrics rows
(same keys as metrics.jsonl, plus `eval`: full/server) go to <runs>/<alg>/metrics.jsonl.

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
import sys
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import dl.run  # noqa: E402,F401  (registers the `mul` resolver)
from dl.build import build  # noqa: E402
from dl.runners import make_runner  # noqa: E402
from dl.train.evaluate import make_evaluate, make_node_eval, model_metrics  # noqa: E402
from dl.train.mapping import resolve_strategy  # noqa: E402

ALGS = ("dwa", "fedasync", "gossip")
TARGETS = (0.80, 0.75, 0.70)
COLORS = {"dwa": "C2", "fedasync": "C1", "gossip": "C0"}


def compose_cfg(alg: str, overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"experiment=outage_{alg}", "logger=disabled", "sim.progress=false"]
            + overrides,
        )
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def outage_window(cfg: dict) -> tuple[float, float]:
    ((a, b),) = cfg["server"]["outages"]
    return float(a), float(b)


def run_alg(alg: str, overrides: list[str], out_dir: Path, dense_s: float) -> list[dict]:
    cfg = compose_cfg(alg, overrides)
    sim = cfg["sim"]
    duration, every = float(sim["duration_s"]), float(sim["eval_every_s"])
    t_down, t_up = outage_window(cfg)
    b = build(cfg)
    strategy = resolve_strategy(
        sim["node_map"], cfg["task"]["model"], chunk=sim.get("node_map_chunk")
    )
    runner = make_runner(cfg, b, strategy)
    evaluate = make_evaluate(b.apply, b.dataset.x_test, b.dataset.y_test, sim["eval_batch"])
    n = int(b.env.counts.shape[0])
    node_eval = None
    if runner.node_params is not None:
        node_eval = make_node_eval(evaluate, n, int(sim["eval_nodes"]), cfg["seed"])
    grid = set(np.arange(0.0, duration + 1e-6, every).round(6).tolist())
    dense = set()
    if runner.params(runner.init) is not None:  # server algorithms: zoom on the return
        dense = set((t_up + np.arange(1.0, dense_s + 1e-6, 1.0)).round(6).tolist()) - grid
    schedule = sorted(grid | dense)
    state, key = runner.init, jax.random.key(cfg["seed"])
    totals: dict[str, float] = {}
    rows = []
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    with (out_dir / "metrics.jsonl").open("w") as f:
        for t in schedule:
            if t > 0:
                state = runner.chunk(state, key, float(t))
                state, counts = runner.drain(state)
                for k, v in counts.items():
                    totals[k] = totals.get(k, 0.0) + v
            row = {"virtual_time_s": runner.clock(state), "eval": "full" if t in grid else "server"}
            row |= model_metrics(runner, state, evaluate, node_eval, nodes=t in grid)
            row |= {k: v for k, v in runner.gauges(state).items() if k != "staleness_hist"}
            row |= totals
            row["wall_time_s"] = time.perf_counter() - t0
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(
                f"[{alg}] t={row['virtual_time_s']:.0f}s acc={row['test_accuracy']:.4f} "
                f"wall={row['wall_time_s']:.0f}s",
                flush=True,
            )
    meta = {
        "alg": alg,
        "overrides": overrides,
        "num_nodes": n,
        "duration_s": duration,
        "outage": [t_down, t_up],
        "wall_time_s": time.perf_counter() - t0,
        "local_steps": cfg["task"]["train"]["local_steps"],
        "strategy": strategy,
    }
    (out_dir / "run.json").write_text(json.dumps(meta, indent=1))
    return rows


def at(rows: list[dict], t: float, key: str):
    """Value of `key` in the full evaluation at virtual time t (None if absent)."""
    for r in rows:
        if abs(r["virtual_time_s"] - t) < 1e-3 and key in r:
            return r[key]
    return None


def time_to(rows: list[dict], key: str, target: float):
    for r in rows:
        if r.get(key) is not None and r[key] >= target:
            return r["virtual_time_s"]
    return None


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
            hit = next(
                (
                    r
                    for r in rows
                    if r["virtual_time_s"] > t_up + 1e-3 and r["test_accuracy"] >= ref
                ),
                None,
            )
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


def measure(out: Path) -> None:
    """Wall seconds per 1-s quantum (after compile + 2 warm quanta) per algorithm and N."""
    rows = []
    base = ["task.train.local_steps=5", "algorithm.max_arrivals=12"]
    cases = [
        ("fedasync", 1000, ["server=always"]),
        ("dwa", 1000, ["server=always"]),
        ("dwa", 1000, ["server=never"]),
        ("fedasync", 200, ["server=always"]),
        ("dwa", 200, ["server=always"]),
        ("dwa", 200, ["server=never"]),
    ]
    for alg, n, extra in cases:
        ov = (
            base
            + extra
            + [
                f"sim.num_nodes={n}",
                "algorithm.max_trainings=28" if alg == "dwa" else "sim.eval_nodes=10",
            ]
        )
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
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.measure:
        measure(args.out / "outage_sizing.json")
        return
    data = {}
    for alg in args.algs:
        path = args.runs / alg / "metrics.jsonl"
        if args.plot_only:
            data[alg] = [json.loads(x) for x in path.open()]
        else:
            data[alg] = run_alg(alg, args.overrides, args.runs / alg, args.dense_s)
    cfg = compose_cfg(args.algs[0], args.overrides)
    t_down, t_up = outage_window(cfg)
    res = analyse(data, t_down, t_up, float(cfg["sim"]["eval_every_s"]))
    res["command"] = "python scripts/fig_outage.py " + " ".join(sys.argv[1:])
    res["runs"] = {
        a: json.loads((args.runs / a / "run.json").read_text())
        for a in args.algs
        if (args.runs / a / "run.json").is_file()
    }
    (args.out / "outage.json").write_text(json.dumps(res, indent=1))
    what = f"{cfg['task']['model']}, {cfg['sim']['num_nodes']} nodes"
    plot(data, t_down, t_up, args.out / "outage.png", what)
    print(json.dumps({k: v for k, v in res.items() if k not in ("runs",)}, indent=1)[:4000])


if __name__ == "__main__":
    main()
