"""GPU readiness check (issue 16): one time-boxed run that writes one JSON.

Stages, each in its own subprocess with a wall-time cap, all inside `--budget-s` (480 s,
counted from `scripts/gpu_check.sh`'s start, the CUDA install included):
  install     the CUDA extra (done by gpu_check.sh; its outcome is passed in)
  tests       the pytest subset that matters on an accelerator (one-vs-many-device equality,
              the golden update rules; goldens re-run at float32 matmul precision if they fail)
  strategy    `vmap` vs `lax.map` per model: `resolve_strategy("auto")`'s pick beside the
              timed winner on one batch-training call of K nodes (compile excluded, median of 3)
  femnist     FEMNIST-style FedAvg (3,400 clients, 10 per round, 1,500 rounds, cnn_femnist on
              Fashion-MNIST's 28x28 images): s per round; the whole run projected if capped
  population  the largest logistic gossip population that runs (doubling N with
              scripts/bench_gossip_scale.py until it fails or the stage's time runs out)
  stunner     an outage_* experiment on STUNner phones, short horizon: wall s per virtual s
A stage that fails, times out or has no time left is recorded with `status` and `reason`; one
that ran has a numeric `value` (its headline, unit in `unit`). `--cpu-smoke` (automatic when
JAX sees no GPU) runs tiny sizes in under a minute; tests/test_gpu_check.py runs it.

    bash scripts/gpu_check.sh [OUT.json] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("install", "tests", "strategy", "femnist", "population", "stunner")
FULL = {  # sizes and per-stage caps (s) on a GPU
    "tests": ["tests/test_sharding.py", "tests/test_golden_*.py"],
    "models": ["logreg", "cnn_small", "cnn_femnist"],
    "strategy_nodes": 1000,
    "femnist": {"nodes": 3400, "per_round": 10, "rounds": 1500},
    "population": {"start": 100_000, "max": 2**27},
    "stunner": {"experiment": "outage_dwa", "nodes": 1000, "horizon_s": 120, "chunks": 4},
    "caps": {"tests": 150, "strategy": 45, "femnist": 100, "population": 120, "stunner": 75},
}
SMOKE = {  # the CPU path: every stage at toy sizes (compile-bound: ~60-90 s on 2 busy cores)
    "tests": ["tests/test_golden_server.py"],
    "models": ["logreg", "cnn_small"],
    "strategy_nodes": 2,
    "femnist": {"nodes": 20, "per_round": 2, "rounds": 2},
    "population": {"start": 100, "max": 100},
    "stunner": {"experiment": "outage_fedasync", "nodes": 20, "horizon_s": 10, "chunks": 2},
    "caps": {"tests": 20, "strategy": 20, "femnist": 25, "population": 25, "stunner": 40},
}
FEMNIST_TRAIN = {"local_steps": 10, "batch_size": 20}  # ~one pass over a writer's ~200 images


def _compose(lines: list[str]) -> dict:
    from dl.resume_config import compose_resolved

    return compose_resolved(["logger=disabled", "sim.progress=false", *lines])


def stage_tests(sz: dict) -> dict:
    """pytest on the subset: goldens on the default backend (re-run at float32 matmul precision
    if they fail: TF32), test_sharding on fake CPU devices (it counts host devices), and with
    more than one GPU the same equality on real devices (`real_device_equality`)."""
    import glob

    import jax

    on_gpu = jax.default_backend() == "gpu"
    files = sorted(f for pat in sz["tests"] for f in glob.glob(str(ROOT / pat)))
    shard = [f for f in files if f.endswith("test_sharding.py")]
    rest = [f for f in files if f not in shard]

    def pytest(fs: list[str], extra_env: dict) -> dict:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *fs]
        env = {**os.environ, "WANDB_MODE": "disabled", **extra_env}
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        lines = [x for x in r.stdout.splitlines() if x.strip()]
        last = lines[-1] if lines else r.stderr.strip()[-300:]
        return {"rc": r.returncode, "summary": last, "passed": _count(last, "passed")} | {
            "failed": _count(last, "failed") + _count(last, "error")
        }

    runs = {}
    if rest:
        runs["default_backend"] = pytest(rest, {})
        if runs["default_backend"]["rc"] != 0 and on_gpu:
            runs["float32_precision"] = pytest(rest, {"JAX_DEFAULT_MATMUL_PRECISION": "float32"})
    if shard:
        runs["sharding_fake_cpu_devices"] = pytest(shard, {"JAX_PLATFORMS": "cpu"})
    counted = [r for k, r in runs.items() if k != "float32_precision"]
    out = {"files": [os.path.relpath(f, ROOT) for f in files], "runs": runs}
    n_dev = jax.device_count()
    if on_gpu and n_dev > 1:
        out["real_devices"] = real_device_equality()
    else:
        out["real_devices"] = {"skipped": f"{n_dev} {jax.default_backend()} device(s)"}
    return out | {
        "value": sum(r["passed"] for r in counted),
        "unit": "tests passed",
        "failed": sum(r["failed"] for r in counted),
    }


def real_device_equality() -> dict:
    """test_sharding's driver on one GPU vs all GPUs (CUDA_VISIBLE_DEVICES), compared as that
    test compares 1 vs 8 fake devices: node-axis sums at rtol 1e-5, the rest exactly."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("test_sharding", ROOT / "tests/test_sharding.py")
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for tag, visible in (("one", "0"), ("all", None)):
            env = {**os.environ, "WANDB_MODE": "disabled"}
            if visible is not None:
                env["CUDA_VISIBLE_DEVICES"] = visible
            cmd = [sys.executable, "-c", mod.DRIVER, f"{d}/{tag}"]
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                err = [x for x in r.stderr.splitlines() if x.strip()] or ["?"]
                return {"ok": False, "reason": f"{tag}: {err[-1][:300]}"}
            res[tag] = json.loads(r.stdout.strip().splitlines()[-1])
    bad = []
    for alg in ("fedavg", "fedasync", "gossip", "dwa"):
        for a, b in zip(res["one"][alg], res["all"][alg], strict=False):
            for k in a:
                tol = 1e-5 if any(t in k for t in mod.REDUCTIONS) else 0.0
                if k != "wall_time_s" and not _same(a[k], b.get(k), tol):
                    bad.append(f"{alg}.{k}: {a[k]} vs {b.get(k)}")
    devices = [res["one"]["devices"], res["all"]["devices"]]
    return {"ok": not bad, "devices": devices, "mismatches": bad[:10]}


def _same(a, b, tol: float) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and tol:
        return math.isclose(a, b, rel_tol=tol, abs_tol=1e-9)
    return a == b


def _count(summary: str, word: str) -> int:
    toks = summary.replace(",", " ").split()
    return sum(int(toks[i - 1]) for i, t in enumerate(toks) if t == word and toks[i - 1].isdigit())


def stage_strategy(sz: dict) -> dict:
    """vmap vs lax.map on one call of `make_batch_train` over K nodes, per model."""
    import jax

    from dl.bench.batches import random_batch_args
    from dl.models import make_model
    from dl.train.local import LocalTrainSpec, make_batch_train
    from dl.train.mapping import resolve_strategy

    backend, k, m = jax.default_backend(), sz["strategy_nodes"], 32
    spec = LocalTrainSpec(batch_size=16, local_steps=2, lr=0.05, optimizer="sgd")
    rows = {}
    for name in sz["models"]:
        shape = (64,) if name == "logreg" else (28, 28, 1)
        model = make_model(name, shape, 10)
        apply = lambda p, x, model=model: model.apply({"params": p}, x)
        args = random_batch_args(model, shape, k, m)
        calls, compile_s = {}, {}
        for s in ("vmap", "map"):
            t0 = time.perf_counter()
            calls[s] = jax.jit(make_batch_train(apply, spec, s)).lower(*args).compile()
            compile_s[s] = time.perf_counter() - t0
            jax.block_until_ready(calls[s](*args))  # warm-up
        times = {s: [] for s in calls}
        for _ in range(3):  # interleaved
            for s, c in calls.items():
                t0 = time.perf_counter()
                jax.block_until_ready(c(*args))
                times[s].append(time.perf_counter() - t0)
        med = {s: statistics.median(t) for s, t in times.items()}
        fastest = min(med, key=med.get)
        auto = resolve_strategy("auto", name, backend)
        rows[name] = {"median_s": med, "compile_s": compile_s, "fastest": fastest, "auto": auto}
        rows[name]["auto_is_fastest"] = auto == fastest
    agree = sum(r["auto_is_fastest"] for r in rows.values())
    return {"nodes": k, "examples": m, "train": "2 SGD steps of batch 16", "models": rows} | {
        "value": agree,
        "unit": f"of {len(rows)} models where auto picks the faster strategy",
    }


def _chunk_timings(cfg: dict, stop_after_s: float, rounds: int) -> dict:
    """Builds the FedAvg runner and runs chunks of `eval_every_s` virtual s, timing each."""
    import jax

    from dl.algorithms.base import make_runner
    from dl.build import build
    from dl.train.mapping import resolve_strategy

    b = build(cfg)
    strategy = resolve_strategy(cfg["sim"]["node_map"], cfg["task"]["model"])
    runner = make_runner(cfg, b, strategy)
    st, key, every = runner.init, jax.random.key(0), float(cfg["sim"]["eval_every_s"])
    target, walls, done = every, [], [0]
    t_end = time.perf_counter() + stop_after_s
    while done[-1] < rounds and time.perf_counter() < t_end:
        t0 = time.perf_counter()
        st = runner.chunk(st, key, target)
        jax.block_until_ready(st)
        walls.append(time.perf_counter() - t0)
        done.append(runner.gauges(st)["round"])
        target = max(target, runner.clock(st)) + every
    return {"strategy": strategy, "walls": walls, "rounds": done[1:]}


def stage_femnist(sz: dict, cap: float) -> dict:
    """FEMNIST-style FedAvg: s per round from the steady chunks, projected to all rounds."""
    f = sz["femnist"]
    cfg = _compose(
        [
            "task=fmnist_cnn",
            "task.model=cnn_femnist",
            "trace=constant",
            f"sim.num_nodes={f['nodes']}",
            f"algorithm.clients_per_round={f['per_round']}",
            f"task.train.local_steps={FEMNIST_TRAIN['local_steps']}",
            f"task.train.batch_size={FEMNIST_TRAIN['batch_size']}",
            f"sim.max_rounds={f['rounds']}",
            "sim.eval_every_s=600",
            "sim.duration_s=100000000",
        ]
    )
    t = _chunk_timings(cfg, 0.6 * cap, f["rounds"])
    rounds, walls = t["rounds"], t["walls"]
    if len(walls) >= 2 and rounds[-1] > rounds[0]:
        per_round = sum(walls[1:]) / (rounds[-1] - rounds[0])
    else:
        per_round = walls[0] / max(rounds[0], 1)  # one chunk: compile included (upper bound)
    first = walls[0] - per_round * rounds[0]
    projected = first + per_round * f["rounds"]
    return t | {
        "workload": f | FEMNIST_TRAIN | {"model": "cnn_femnist", "data": "fmnist 28x28"},
        "s_per_round": per_round,
        "first_chunk_overhead_s": first,
        "rounds_run": rounds[-1],
        "projected": rounds[-1] < f["rounds"],
        "value": projected,
        "unit": f"wall s for {f['rounds']} rounds (measured or projected)",
    }


def stage_population(sz: dict, cap: float) -> dict:
    """Doubles N for scripts/bench_gossip_scale.py until a run fails or time runs out."""
    p, t_end, tries = sz["population"], time.perf_counter() + cap - 4, []
    n, best = p["start"], None
    with tempfile.TemporaryDirectory() as d:
        while n <= p["max"]:
            left = t_end - time.perf_counter()
            if left < 3:
                tries.append({"nodes": n, "ok": False, "reason": "stage time cap"})
                break
            out = Path(d) / f"{n}.json"
            cmd = [sys.executable, str(ROOT / "scripts/bench_gossip_scale.py"), "--nodes", str(n)]
            cmd += ["--periods", "1", "--out", str(out)]
            try:
                r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=left)
            except subprocess.TimeoutExpired:
                tries.append({"nodes": n, "ok": False, "reason": f"timed out after {left:.0f} s"})
                break
            if r.returncode != 0:
                err = [x for x in r.stderr.splitlines() if x.strip()] or ["?"]
                tries.append({"nodes": n, "ok": False, "reason": err[-1][:300]})
                break
            res = json.loads(out.read_text())
            tries.append({"nodes": n, "ok": True, "median_period_s": res["median_period_s"]})
            tries[-1] |= {"first_period_s": res["first_period_incl_compile_s"]}
            best, n = n, 2 * n
    if best is None:
        raise RuntimeError(f"no population ran: {tries}")
    return {"tries": tries, "value": best, "unit": "nodes (largest that ran; logistic gossip)"}


def stage_stunner(sz: dict) -> dict:
    """A short outage_* run through `dl.simulate.simulate`; wall s per virtual s from metrics."""
    from dl.simulate import simulate

    s = sz["stunner"]
    every = s["horizon_s"] / s["chunks"]
    cfg = _compose(
        [
            f"experiment={s['experiment']}",
            f"sim.num_nodes={s['nodes']}",
            f"sim.duration_s={s['horizon_s']}",
            f"sim.eval_every_s={every}",
        ]
    )
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        simulate(cfg, Path(d))
        wall = time.perf_counter() - t0
        rows = [json.loads(x) for x in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    v = [r["virtual_time_s"] for r in rows]
    w = [r["wall_time_s"] for r in rows]
    steady = (w[-1] - w[1]) / (v[-1] - v[1]) if len(rows) > 2 and v[-1] > v[1] else None
    return {
        "experiment": s["experiment"],
        "nodes": s["nodes"],
        "horizon_s": s["horizon_s"],
        "total_wall_s": wall,
        "first_chunk_wall_s": w[1] - w[0] if len(w) > 1 else None,
        "value": steady if steady is not None else wall / s["horizon_s"],
        "unit": "wall s per virtual s (after the first chunk, evaluations included)",
    }


def run_stage(name: str, sz: dict, cap: float) -> dict:
    """In the stage's own process: the stage's numbers, or raises."""
    if name == "tests":
        return stage_tests(sz)
    if name == "strategy":
        return stage_strategy(sz)
    if name == "femnist":
        return stage_femnist(sz, cap)
    if name == "population":
        return stage_population(sz, cap)
    if name == "stunner":
        return stage_stunner(sz)
    raise ValueError(f"unknown stage {name}")


def spawn(name: str, smoke: bool, cap: float) -> dict:
    """Runs one stage in a subprocess under `cap` s; a failure becomes a recorded reason."""
    cmd = [sys.executable, __file__, "--stage", name, "--cap", f"{cap:.1f}"]
    cmd += ["--cpu-smoke"] if smoke else []
    t0 = time.perf_counter()
    # its own process group: a timeout also ends what the stage started (pytest, benchmarks)
    p = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = p.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {"status": "skipped", "reason": f"timed out after its {cap:.0f}-s cap"}
    secs = time.perf_counter() - t0
    lines = stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        err = [x for x in stderr.splitlines() if x.strip()] or [f"exit {p.returncode}"]
        return {"status": "failed", "reason": err[-1][:400], "seconds": secs}
    return {"status": "ok", "seconds": secs} | json.loads(lines[-1])


def install_record() -> dict:
    """The CUDA-extra install outcome that gpu_check.sh passed in the environment."""
    status = os.environ.get("DL_GPU_INSTALL_STATUS", "skipped")
    reason = os.environ.get("DL_GPU_INSTALL_REASON", "not run through scripts/gpu_check.sh")
    out = {"status": status, "reason": reason}
    if status == "ok":
        out |= {"value": float(os.environ.get("DL_GPU_INSTALL_S", "0")), "unit": "s"}
    return out


def main(argv: list[str] | None = None) -> dict | None:
    """CLI: the orchestrator, or (with --stage) one stage printing its JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=None)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes (automatic without GPU)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="the whole check's wall cap")
    ap.add_argument("--cap-scale", type=float, default=1.0, help="multiplies every stage's cap")
    ap.add_argument("--stage", choices=STAGES[1:], help=argparse.SUPPRESS)
    ap.add_argument("--cap", type=float, default=60.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.stage:
        res = run_stage(a.stage, SMOKE if a.cpu_smoke else FULL, a.cap)
        print(json.dumps(res))
        return None
    t_start = float(os.environ.get("DL_GPU_CHECK_T0", time.time()))
    import jax

    backend = jax.default_backend()
    smoke = a.cpu_smoke or backend != "gpu"
    sz = SMOKE if smoke else FULL
    out = a.out or ROOT / f"results/gpu_check_{backend}.json"
    result = {
        "backend": backend,
        "devices": [d.device_kind for d in jax.devices()],
        "jax": jax.__version__,
        "mode": "cpu-smoke" if smoke else "full",
        "budget_s": a.budget_s,
        "cap_scale": a.cap_scale,
        "sizes": sz,
        "loadavg_start": list(os.getloadavg()),
        "stages": {"install": install_record()},
    }
    for name in STAGES[1:]:
        left = a.budget_s - (time.time() - t_start)
        cap = min(sz["caps"][name] * a.cap_scale, left)
        if cap < 5:
            result["stages"][name] = {"status": "skipped", "reason": f"no time left ({left:.0f} s)"}
        else:
            result["stages"][name] = spawn(name, smoke, cap)
        st = result["stages"][name]
        print(f"{name}: {st['status']} {st.get('value', st.get('reason', ''))}", file=sys.stderr)
    result["problems"] = check_result(result)
    result["loadavg_end"] = list(os.getloadavg())
    result["wall_s"] = time.time() - t_start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=_finite) + "\n")
    print(f"wrote {out} in {result['wall_s']:.0f} s", file=sys.stderr)
    return result


def check_result(result: dict) -> list[str]:
    """What is wrong with a result (empty: fine): every stage present, each either ok with a
    finite numeric `value` or skipped/failed with a non-empty `reason`."""
    problems = []
    stages = result.get("stages", {})
    for name in STAGES:
        st = stages.get(name)
        if st is None:
            problems.append(f"{name}: missing")
        elif st.get("status") == "ok":
            v = st.get("value")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                problems.append(f"{name}: ok without a finite numeric value ({v!r})")
        elif st.get("status") in ("skipped", "failed"):
            if not isinstance(st.get("reason"), str) or not st["reason"].strip():
                problems.append(f"{name}: {st['status']} without a reason")
        else:
            problems.append(f"{name}: unknown status {st.get('status')!r}")
    return problems


def _finite(x):
    return None if isinstance(x, float) and not math.isfinite(x) else str(x)


if __name__ == "__main__":
    main()
