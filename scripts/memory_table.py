"""Peak memory and chunk compile time of real runs, measured (issue 17), not computed.

Every case is one `python -m dl.run` in its own subprocess (this script with `--worker`), so
its peak resident memory is the child's own `ru_maxrss` (`os.wait4`); the worker records JAX's
compile events (`jax.monitoring`: trace + lowering + XLA compile, per jitted function name) and
reports the seconds spent compiling the jitted `chunk` functions. Machine load (1-min load
average before/after each case, cores) is recorded with the numbers: timings on a loaded
machine are upper bounds.

Cases: gossip and DWA at several N with `cnn_small` (Fashion-MNIST) and `mlp` (sklearn digits),
training and system-only (`sim.train=false`), plus the compile time of FedAsync / gossip / DWA
on `conf/experiment/outage_*` (shortened to 20 virtual s). `params_bytes_n` = N x params x 4 B.

    python scripts/memory_table.py [--out results/memory_table.json] [--quick] [--big]
    python scripts/memory_table.py --table results/memory_table.json --readme README.md
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
SHORT = ["sim.duration_s=20", "sim.eval_every_s=20", "sim.eval_nodes=5", "logger=disabled"]
SHORT += ["sim.progress=false"]
TASKS = {  # name: (overrides, model, params)
    "cnn_small": (["task=fmnist_cnn", "task.train.local_steps=2"], "cnn_small", 215370),
    "mlp": (["task=digits_mlp"], "mlp", 55210),
}
ALGS = {
    "gossip": ["algorithm=gossip", "algorithm.max_trainings=16", "server=never"],
    "dwa": ["algorithm=dwa", "algorithm.max_trainings=16", "algorithm.concurrency=32"]
    + ["algorithm.max_arrivals=8", "server=outage_mid"],
}
# (N, train) per task: sized so that the whole table takes < 10 min on the shared 2-core CPU
SIZES = {
    "cnn_small": ((250, True), (1000, True), (1000, False)),
    "mlp": ((1000, True), (1000, False)),  # digits: 1,438 training examples
}
QUICK_SIZES = {"cnn_small": ((200, True), (200, False)), "mlp": ((500, True),)}
# --big: 10,000 cnn_small nodes (float32 gossip needs ~16 GB of state: models, the inbox pool
# and the payloads on the wire; before the pool ~22 GB, more than this 23-GiB machine has)
BIG = (
    ("cnn_small", "gossip", 10_000, True, "bfloat16"),
    ("cnn_small", "dwa", 10_000, True, "bfloat16"),
    ("cnn_small", "gossip", 10_000, True, "float32"),
    ("cnn_small", "gossip", 10_000, False, "float32"),
)
MEM_SHORT = ["sim.duration_s=10", "sim.eval_every_s=10", *SHORT[2:]]
COMPILE_CASES = ("outage_fedasync", "outage_gossip", "outage_dwa")


def worker(overrides: list[str], out: Path) -> None:
    """Runs dl.run in this process and writes its compile events to `out` (JSON)."""
    import jax.monitoring

    events: list = []

    def on_event(name, secs, **kw):
        if name in COMPILE_EVENTS:
            events.append((str(kw.get("fun_name", "?")), name.rsplit("/", 1)[-1], float(secs)))

    jax.monitoring.register_event_duration_secs_listener(on_event)
    import runpy

    sys.argv = ["dl.run", *overrides]
    t = time.perf_counter()
    try:
        runpy.run_module("dl.run", run_name="__main__", alter_sys=True)  # as python -m dl.run
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    wall = time.perf_counter() - t
    per: dict = {}
    for fun, kind, secs in events:
        fun = fun[4:-1] if fun.startswith("jit(") else fun  # trace: `f`, lowering: `jit(f)`
        per.setdefault(fun, {}).setdefault(kind, 0.0)
        per[fun][kind] += secs
    out.write_text(json.dumps({"wall_s": wall, "compile": per}))


def run_case(overrides: list[str], tmp: Path) -> dict:
    """One case in a child process: peak RSS (MiB), wall seconds, chunk compile seconds."""
    res = tmp / "worker.json"
    res.unlink(missing_ok=True)
    run_dir = tmp / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run directory per case
    cmd = [sys.executable, __file__, "--worker", str(res), "--"]
    cmd += [*overrides, f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    row = {
        "overrides": overrides,
        "rc": p.returncode,
        "peak_rss_mib": round(ru.ru_maxrss / 1024.0, 1),  # Linux: KiB
        "elapsed_s": round(time.perf_counter() - t, 2),
        "load1_before": round(load0, 2),
        "load1_after": round(os.getloadavg()[0], 2),
    }
    if p.returncode != 0 or not res.exists():
        row["error"] = err.strip().splitlines()[-1:] if err.strip() else ["no output"]
        return row
    w = json.loads(res.read_text())
    chunks = {f: v for f, v in w["compile"].items() if "chunk" in f}
    row["run_wall_s"] = round(w["wall_s"], 2)
    row["chunk_compile_s"] = {f: round(sum(v.values()), 2) for f, v in chunks.items()}
    row["chunk_compile_detail"] = {
        f: {k: round(s, 3) for k, s in v.items()} for f, v in chunks.items()
    }
    row["all_compile_s"] = round(sum(sum(v.values()) for v in w["compile"].values()), 2)
    return row


def cases(quick: bool, big: bool = False) -> list[dict]:
    out = [
        {"kind": "compile", "experiment": e, "overrides": [f"experiment={e}", *SHORT]}
        for e in COMPILE_CASES
    ]
    out += [
        {
            "kind": "compile",
            "experiment": e,
            "cache": True,
            "overrides": [f"experiment={e}", *SHORT],
        }
        for e in COMPILE_CASES
    ]
    sizes = QUICK_SIZES if quick else SIZES
    for task, (tov, model, params) in TASKS.items():
        for alg, aov in ALGS.items():
            for n, train in sizes[task]:
                ov = [*tov, *aov, "trace=stunner", f"sim.num_nodes={n}", *MEM_SHORT]
                ov += [f"sim.train={str(train).lower()}"]
                row = {"kind": "memory", "task": task, "model": model, "params": params}
                row |= {"algorithm": alg, "num_nodes": n, "train": train}
                out.append(row | {"params_bytes_n": n * params * 4, "overrides": ov})
    for task, alg, n, train, dtype in BIG if big else ():
        tov, model, params = TASKS[task]
        ov = [*tov, *ALGS[alg], "trace=stunner", f"sim.num_nodes={n}", *MEM_SHORT]
        ov += [f"sim.train={str(train).lower()}", f"sim.node_dtype={dtype}"]
        row = {"kind": "memory", "task": task, "model": model, "params": params, "dtype": dtype}
        row |= {"algorithm": alg, "num_nodes": n, "train": train}
        out.append(row | {"params_bytes_n": n * params * 4, "overrides": ov})
    return out


def data_worker(overrides: list[str]) -> None:
    """Prints the MiB of the run's data arrays (node data x/y/counts and the test set)."""
    from dl.analysis.launch import compose
    from dl.build import build

    b = build(compose(overrides))
    arrays = (b.env.x, b.env.y, b.env.counts, b.dataset.x_test, b.dataset.y_test)
    print(json.dumps(round(sum(int(a.nbytes) for a in arrays) / 2**20, 1)))


def data_mib(overrides: list[str]) -> float:
    """`data_worker` in a child process: this process must stay small, since a child's
    ru_maxrss starts from its parent's resident set at fork (a world built here once raised
    every later row's peak to ~2.1 GiB)."""
    cmd = [sys.executable, __file__, "--data", "--", *overrides]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def allowance_mib(r: dict) -> float:
    """Issue 17's target: 1.2 x N x params x 4 B + data + 1 GiB."""
    return 1.2 * r["params_bytes_n"] / 2**20 + r["data_mib"] + 1024.0


def table(rows: list[dict]) -> str:
    """The README's memory block (markdown) from measured rows."""
    lines = [
        "| task (model) | algorithm | N | train | node models | peak RSS (MiB) "
        "| N x params x 4 B (MiB) | data (MiB) | peak / (1.2 x N x params x 4 B + data "
        "+ 1 GiB) | chunk compile (s) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("kind") != "memory" or r.get("rc") != 0:
            continue
        comp = "+".join(f"{s:.1f}" for s in r.get("chunk_compile_s", {}).values()) or "-"
        lines.append(
            f"| {r['task']} ({r['model']}) | {r['algorithm']} | {r['num_nodes']:,} | "
            f"{'yes' if r['train'] else 'no'} | {r.get('dtype', 'float32')} | "
            f"{r['peak_rss_mib']:,.0f} | "
            f"{r['params_bytes_n'] / 2**20:,.0f} | {r.get('data_mib', float('nan')):,.0f} | "
            f"{r['peak_rss_mib'] / allowance_mib(r) if 'data_mib' in r else float('nan'):.2f} | "
            f"{comp} | {r['load1_before']:.1f} |"
        )
    comp = [r for r in rows if r.get("kind") == "compile" and r.get("rc") == 0]
    if comp:
        lines.append("")
        lines.append(
            "| experiment (20 virtual s) | compile cache | chunk compile (s) | peak RSS (MiB) "
            "| load avg |"
        )
        lines.append("|---|---|---|---|---|")
        for r in comp:
            c = "+".join(f"{s:.1f}" for s in r.get("chunk_compile_s", {}).values()) or "-"
            cache = "second run" if r.get("cache") else "off"
            lines.append(
                f"| {r['experiment']} | {cache} | {c} | {r['peak_rss_mib']:,.0f} "
                f"| {r['load1_before']:.1f} |"
            )
    return "\n".join(lines)


BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"


def write_block(readme: Path, block: str) -> None:
    """Replaces the text between the memory markers of `readme` with `block`."""
    from dl.analysis.readme import replace_block

    if not replace_block(readme, "memory", block):
        raise SystemExit(f"{readme}: needs one {BEGIN} and one {END}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "memory_table.json")
    ap.add_argument("--quick", action="store_true", help="one small N per task")
    ap.add_argument("--only", default="", help="cases whose overrides contain this text")
    ap.add_argument("--big", action="store_true", help="also 10,000 cnn_small gossip nodes")
    ap.add_argument("--table", type=Path, help="print the README block of a results file")
    ap.add_argument("--readme", type=Path, help="with --table: rewrite its memory block")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    if a.worker:
        return worker(a.overrides, a.worker)
    if a.data:
        return data_worker(a.overrides)
    if a.table:
        block = table(json.loads(a.table.read_text())["rows"])
        if a.readme:
            write_block(a.readme, block)
        print(block)
        return
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in cases(a.quick, a.big):
            if a.only and a.only not in " ".join(c["overrides"]):
                continue
            if c.get("cache"):  # twice with one fresh cache folder: the second run loads
                ov = [*c["overrides"], f"sim.compile_cache={Path(tmp) / c['experiment']}"]
                cold = run_case(ov, Path(tmp))
                r = {
                    **c,
                    **run_case(ov, Path(tmp)),
                    "cold_chunk_compile_s": cold.get("chunk_compile_s"),
                }
            else:
                r = {**c, **run_case(c["overrides"], Path(tmp))}
                if c["kind"] == "memory":
                    r["data_mib"] = data_mib(c["overrides"])
            print(json.dumps({k: v for k, v in r.items() if k != "overrides"}), flush=True)
            rows.append(r)
    meta = {
        "cpu_count": os.cpu_count(),
        "note": "peak RSS: the child's ru_maxrss; compile: trace + lowering + XLA compile of "
        "the jitted chunk functions (jax.monitoring); load avg: 1-min, before each case",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if a.only and a.out.exists():  # keep the rows of the cases not rerun
        ran = {json.dumps(r["overrides"]): r for r in rows}
        old = json.loads(a.out.read_text())
        kept = [ran.pop(json.dumps(r["overrides"]), r) for r in old["rows"]]
        rows = kept + list(ran.values())  # in the file's order, new cases last
        meta["note"] = old["meta"]["note"] + f"; rerun {meta['date']}: {a.only}"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
