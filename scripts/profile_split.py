"""Where a realistic run's wall time goes (issue 16): FedAvg, FedAsync, gossip and DWA on
Fashion-MNIST + small CNN + STUNner phones, timed from outside the library.

The run is `dl.simulate.simulate` itself; this script only swaps two names that `dl.simulate`
calls for timing wrappers: `get_algorithm` (the runner its `make` returns has its `chunk` timed
and blocked on and its `drain` counters kept) and `model_metrics` (the whole evaluation: server
model and the node-model sample). Split of the run's wall time:
  compile     first chunk minus the median of the later chunks, plus first evaluation minus
              the median of the later ones (a first call is compile + one call)
  chunks      the rest of the chunk time (the engine's steady work)
  evaluation  the rest of the evaluation time
  host        wall minus all of the above (logging, gauges, counters, the loop itself)
Useful training = the local trainings the run actually finished (FedAvg: rounds x K; FedAsync:
uploads trained; gossip: trainings; DWA: both) x E steps x B examples x 3 x forward FLOPs
(`dl.models.model_flops_per_example`). It is reported as a share of the matmul ceiling
(`dl.bench.matmul`, measured in the same run) and as "useful training time" = useful FLOPs / the
same model's dense training rate (`make_batch_train` on 64 nodes at once, measured in the same
run) over wall time: the share of the run a perfect engine would need.

    .venv/bin/python scripts/profile_split.py [--nodes 200] [--horizon 180] [--every 30]
        [--algs fedavg fedasync gossip dwa] [--out results/profile_split.json] [--readme]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax

import dl.simulate as sim_mod
from dl.bench.batches import random_batch_args
from dl.bench.matmul import peak_matmul_gflops
from dl.models import make_model, model_flops_per_example
from dl.resume_config import compose_resolved
from dl.train.local import LocalTrainSpec, make_batch_train
from dl.train.mapping import resolve_strategy

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = {
    "fedavg": "fmnist_stunner_fedavg",
    "fedasync": "outage_fedasync",
    "gossip": "outage_gossip",
    "dwa": "outage_dwa",
}
TARGETS = {"useful_train_frac": 0.80, "eval_frac": 0.10, "compile_s": 2.0}
BEGIN, END = "<!-- profile_split:begin -->", "<!-- profile_split:end -->"


class Probe:
    """Timing wrappers for one run (installed over dl.simulate's names)."""

    def __init__(self):
        self.chunks, self.evals, self.counts, self.rounds = [], [], {}, []
        self.first_chunk_at, self.evals_before = None, 0.0  # perf_counter; eval s before it

    def wrap_algorithm(self, get_algorithm):
        """Wraps `get_algorithm(name)`'s `make` (the layout where simulate calls it)."""

        def get(name):
            alg = get_algorithm(name)
            return dataclasses.replace(alg, make=self.wrap_runner(alg.make))

        return get

    def wrap_runner(self, make_runner):
        def make(cfg, b, strategy):
            r = make_runner(cfg, b, strategy)
            chunk, drain = r.chunk, r.drain

            def timed_chunk(st, key, t):
                t0 = time.perf_counter()
                if self.first_chunk_at is None:
                    self.first_chunk_at, self.evals_before = t0, sum(self.evals)
                st = jax.block_until_ready(chunk(st, key, t))
                self.chunks.append(time.perf_counter() - t0)
                self.rounds.append(r.gauges(st)["round"])
                return st

            def kept_drain(st):
                st, c = drain(st)
                for k, v in c.items():
                    self.counts[k] = self.counts.get(k, 0.0) + v
                return st, c

            r.chunk, r.drain = timed_chunk, kept_drain
            return r

        return make

    def wrap_metrics(self, model_metrics):
        def timed(*a, **k):
            t0 = time.perf_counter()
            out = model_metrics(*a, **k)
            self.evals.append(time.perf_counter() - t0)
            return out

        return timed


def trainings(alg: str, cfg: dict, probe: Probe) -> float:
    """Local trainings the run finished (module doc)."""
    c = probe.counts
    if alg == "fedavg":
        return float(probe.rounds[-1]) * cfg["algorithm"]["clients_per_round"]
    fl = c.get("arrivals", 0.0) - c.get("updates_lost", 0.0)
    return fl + c.get("trainings", 0.0)


def train_rate(cfg: dict, k: int = 64) -> float:
    """Dense training rate of the run's model, FLOP/s (one call over k nodes, median of 3)."""
    task, shape = cfg["task"], (28, 28, 1)
    model = make_model(task["model"], shape, 10)
    apply = lambda p, x: model.apply({"params": p}, x)
    t = task["train"]
    spec = LocalTrainSpec(batch_size=t["batch_size"], local_steps=t["local_steps"], lr=t["lr"])
    args = random_batch_args(model, shape, k, 2 * t["batch_size"])
    f = jax.jit(make_batch_train(apply, spec, resolve_strategy("auto", task["model"])))
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    flops = k * t["local_steps"] * t["batch_size"] * 3 * flops_fwd(cfg)
    return flops / statistics.median(times)


def flops_fwd(cfg: dict) -> int:
    return model_flops_per_example(cfg["task"]["model"], (28, 28, 1), 10)


def profile(
    alg: str, nodes: int, horizon: float, every: float, ceiling: float, extra: tuple = ()
) -> dict:
    """One run of `alg`'s experiment under the probe (`extra`: more overrides); the split and
    the FLOP shares."""
    cfg = compose_resolved(
        [
            f"experiment={EXPERIMENTS[alg]}",
            "logger=disabled",
            "sim.progress=false",
            f"sim.num_nodes={nodes}",
            f"sim.duration_s={horizon}",
            f"sim.eval_every_s={every}",
            *extra,
        ]
    )
    probe = Probe()
    saved = sim_mod.get_algorithm, sim_mod.model_metrics  # what dl.simulate calls
    sim_mod.get_algorithm = probe.wrap_algorithm(saved[0])
    sim_mod.model_metrics = probe.wrap_metrics(saved[1])
    load = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            sim_mod.simulate(cfg, Path(d))
            wall = time.perf_counter() - t0
    finally:
        sim_mod.get_algorithm, sim_mod.model_metrics = saved
    ch, ev = probe.chunks, probe.evals
    steady_chunk = statistics.median(ch[1:]) if len(ch) > 1 else ch[0]
    steady_eval = statistics.median(ev[1:]) if len(ev) > 1 else ev[0]
    compile_chunk = max(0.0, ch[0] - steady_chunk)
    compile_eval = max(0.0, ev[0] - steady_eval)
    chunks, evals = sum(ch) - compile_chunk, sum(ev) - compile_eval
    setup = probe.first_chunk_at - t0 - probe.evals_before  # build, data, traces, init
    host = wall - setup - sum(ch) - sum(ev)
    n_train = trainings(alg, cfg, probe)
    t = cfg["task"]["train"]
    useful = n_train * t["local_steps"] * t["batch_size"] * 3 * flops_fwd(cfg)
    rate = train_rate(cfg)
    return {
        "algorithm": alg,
        "experiment": EXPERIMENTS[alg],
        "overrides": list(extra),
        "nodes": nodes,
        "horizon_s": horizon,
        "eval_every_s": every,
        "model": cfg["task"]["model"],
        "local_steps": t["local_steps"],
        "batch_size": t["batch_size"],
        "loadavg": list(load),
        "wall_s": wall,
        "chunk_s": ch,
        "eval_s": ev,
        "split_s": {
            "setup": setup,
            "compile": compile_chunk + compile_eval,
            "chunks": chunks,
            "evaluation": evals,
            "host": host,
        },
        "compile_chunk_s": compile_chunk,
        "compile_eval_s": compile_eval,
        "steady_chunk_s": steady_chunk,
        "steady_eval_s": steady_eval,
        "wall_per_virtual_s": wall / horizon,
        "run_wall_s": wall - setup,
        "chunk_wall_per_virtual_s": sum(ch) / horizon,
        "eval_wall_per_virtual_s": sum(ev) / horizon,
        "trainings": n_train,
        "useful_gflop": useful / 1e9,
        "train_rate_gflops": rate / 1e9,
        "matmul_ceiling_gflops": ceiling,
        "useful_frac_of_ceiling": useful / (wall - setup) / (ceiling * 1e9),
        "useful_train_frac": useful / rate / (wall - setup),
        "eval_frac": evals / (wall - setup),
        "compile_frac": (compile_chunk + compile_eval) / (wall - setup),
        "counters": probe.counts,
    }


def verdicts(row: dict) -> dict:
    """Each acceptance target met or not, with the value."""
    return {
        "useful_train_frac": row["useful_train_frac"] >= TARGETS["useful_train_frac"],
        "eval_frac": row["eval_frac"] <= TARGETS["eval_frac"],
        "compile_s": max(row["compile_chunk_s"], row["compile_eval_s"]) <= TARGETS["compile_s"],
    }


def table(result: dict) -> str:
    """README table of the split."""
    lines = [
        "| run | wall s per virtual s (chunks / evaluation) | setup s | compile s (chunk / eval) "
        "| steady chunks | evaluation | host | useful training, % of run | % of matmul ceiling "
        "| targets met |",
        "|---" * 10 + "|",
    ]
    for r in result["runs"]:
        s, w = r["split_s"], r["run_wall_s"]
        met = [k for k, ok in r["verdicts"].items() if ok]
        extra = "".join(f", {o}" for o in r.get("overrides", []))
        lines.append(
            f"| {r['algorithm']} ({r['experiment']}{extra}) | {r['wall_per_virtual_s']:.3f} "
            f"({r['chunk_wall_per_virtual_s']:.3f} / {r['eval_wall_per_virtual_s']:.3f}) "
            f"| {s['setup']:.1f} | {r['compile_chunk_s']:.1f} / {r['compile_eval_s']:.1f} "
            f"| {100 * s['chunks'] / w:.0f}% | {100 * s['evaluation'] / w:.0f}% "
            f"| {100 * s['host'] / w:.0f}% | {100 * r['useful_train_frac']:.0f}% "
            f"| {100 * r['useful_frac_of_ceiling']:.1f}% | {', '.join(met) or 'none'} |"
        )
    r0 = result["runs"][0]
    loads = [x["loadavg"][0] for x in result["runs"]]
    lines += [
        "",
        f"{r0['nodes']} STUNner phones, {r0['horizon_s']:.0f} virtual s, evaluation every "
        f"{r0['eval_every_s']:.0f} s; matmul ceiling {result['matmul']['gflops']:.1f} GFLOP/s; "
        f"one run each, 1-min load average {min(loads):.1f}-{max(loads):.1f}. Wall s per "
        "virtual s: whole run incl. setup and compile (chunks / evaluations alone). The run "
        "after setup splits into compile (s), steady chunks, evaluation and host (shares of "
        "it; they add up with compile). Targets: useful training >= 80% of the run, "
        "evaluation <= 10%, compile <= 2 s per jitted function.",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--algs", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--horizon", type=float, default=180.0)
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=ROOT / "results/profile_split.json")
    ap.add_argument("--readme", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="more overrides for every run")
    ap.add_argument("--append", action="store_true", help="add these runs to --out's runs")
    a = ap.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    before = peak_matmul_gflops((1024, 2048), 5)
    runs = []
    for alg in a.algs:
        print(f"profiling {alg} ...", file=sys.stderr, flush=True)
        r = profile(alg, a.nodes, a.horizon, a.every, before["gflops"], tuple(a.set))
        runs.append(r | {"glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")})  # dl.hugepages
    after = peak_matmul_gflops((1024, 2048), 5)
    best = max(before, after, key=lambda d: d["gflops"])
    for r in runs:  # the best ceiling seen in this run
        r["useful_frac_of_ceiling"] *= r["matmul_ceiling_gflops"] / best["gflops"]
        r["matmul_ceiling_gflops"] = best["gflops"]
        r["verdicts"] = verdicts(r)
    if a.append and a.out.exists():  # earlier runs keep their own ceiling's shares
        runs = json.loads(a.out.read_text())["runs"] + runs
    result = {"matmul": best, "targets": TARGETS, "runs": runs, "backend": jax.default_backend()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    text = table(result)
    print(text)
    if a.readme:
        from dl.analysis.readme import replace_block

        if not replace_block(ROOT / "README.md", "profile_split", text):
            raise SystemExit(f"README.md: needs one {BEGIN} and one {END}")
    return result


if __name__ == "__main__":
    from dl import hugepages

    hugepages.reexec()  # as dl.run does (DL_HUGEPAGES=0: off)
    main()
