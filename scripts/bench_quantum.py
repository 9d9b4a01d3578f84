"""Benchmark: engine wall time per virtual second, this tree against a reference commit (issue 17).

    python scripts/bench_quantum.py [--ref 84c6c1f] [--repeats 2] [--week] \
        [--out results/bench_quantum.json]
    python scripts/bench_quantum.py --table results/bench_quantum.json --readme README.md

Cases (each one `dl.build.build` + the algorithm's runner, no evaluation, no logging; a child
process per case so the two trees never share a process):
- `fedasync_system_10k`: conf/experiment/outage_fedasync with 10,000 STUNner phones,
  `sim.train=false`, server always up, 1-s quantum; timed over 2 virtual hours after the first
  chunk (compile). `--week` also runs one virtual week (604,800 quanta) on this tree.
- `gossip_1k`, `dwa_1k`: conf/experiment/outage_gossip / outage_dwa (Fashion-MNIST, small CNN,
  STUNner phones) at N = 1,000, training; timed over 3 x 20 virtual s after 40 s of warm-up.
The reference runs from a `git worktree` of `--ref` (default: the commit before this round of
engine work). Cases alternate tree by tree (ref, this, ref, this, ...) so load hits both; the
JSON keeps every timing, the medians, the ratio ref / this and the load average.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "fedasync_system_10k": [
        "experiment=outage_fedasync",
        "sim.num_nodes=10000",
        "sim.train=false",
        "server=always",
        "algorithm.quantum_s=1",
    ],
    "gossip_1k": ["experiment=outage_gossip", "sim.num_nodes=1000"],
    "dwa_1k": ["experiment=outage_dwa", "sim.num_nodes=1000"],
}
SPANS = {  # (warm-up virtual s after the first chunk, timed spans in virtual s)
    "fedasync_system_10k": (60.0, [7200.0]),
    "gossip_1k": (40.0, [20.0, 20.0, 20.0]),
    "dwa_1k": (40.0, [20.0, 20.0, 20.0]),
}


def child(case: str, horizon: float | None) -> dict:
    """Runs one case in this process (the tree on sys.path) and returns its timings."""
    import jax

    from dl.algorithms.base import make_runner
    from dl.analysis.launch import compose
    from dl.build import build
    from dl.train.mapping import resolve_strategy

    cfg = compose([*CASES[case], "logger=disabled"])
    t = time.perf_counter()
    built = build(cfg)
    build_s = time.perf_counter() - t
    runner = make_runner(cfg, built, resolve_strategy(cfg["sim"]["node_map"], cfg["task"]["model"]))
    key = jax.random.key(0)
    t = time.perf_counter()
    st = jax.block_until_ready(runner.chunk(runner.init, key, 1.0))
    first = time.perf_counter() - t
    warm, spans = SPANS[case]
    if horizon is not None:
        spans = [horizon]
    st = jax.block_until_ready(runner.chunk(st, key, runner.clock(st) + warm))
    per = []
    for span in spans:
        t0 = runner.clock(st)
        t = time.perf_counter()
        st = jax.block_until_ready(runner.chunk(st, key, t0 + span))
        per.append((time.perf_counter() - t) / (runner.clock(st) - t0))
    return {"build_s": build_s, "first_chunk_s": first, "wall_per_virtual_s": per}


def run(tree: Path, case: str, horizon: float | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--to", f.name]
        if horizon is not None:
            cmd += ["--horizon", str(horizon)]
        env = dict(os.environ, PYTHONPATH=str(tree))
        # the data root of this checkout: a worktree elsewhere has no ../shared/data beside it
        env.setdefault("DL_DATA_ROOT", str((ROOT.parent / "shared" / "data").resolve()))
        load = os.getloadavg()[0]
        subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
        out = json.loads(Path(f.name).read_text())
    return out | {"load1_before": round(load, 2)}


def table(res: dict) -> str:
    """The README block (markdown) of a results file."""
    lines = [
        f"| case | wall s per virtual s, {res['ref']} | this tree ({res['this']}) | speed-up "
        "| first chunk s (ref / this) |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        m, f = r["median_wall_per_virtual_s"], r["first_chunk_s"]
        first = f"{min(f['ref']):.1f} / {min(f['this']):.1f}"
        lines.append(
            f"| {r['case']} | {m['ref']:.4g} | {m['this']:.4g} | "
            f"{r['ratio_ref_over_this']:.1f}x | {first} |"
        )
    w = res.get("week_fedasync_system_10k")
    if w:
        lines.append("")
        lines.append(
            f"One virtual week of `fedasync_system_10k` (604,800 quanta) on this tree: "
            f"{w['wall_s']:.0f} s wall (load average {w['load1_before']:.1f} at its start)."
        )
    return "\n".join(lines)


BEGIN, END = "<!-- quantum:begin -->", "<!-- quantum:end -->"


def write_block(readme: Path, block: str) -> None:
    """Replaces the text between the quantum markers of `readme` with `block`."""
    from dl.analysis.readme import replace_block

    if not replace_block(readme, "quantum", block):
        raise SystemExit(f"{readme}: needs one {BEGIN} and one {END}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="84c6c1f")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--week", action="store_true", help="also one virtual week, this tree")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_quantum.json")
    ap.add_argument("--table", type=Path, help="print the README block of a results file")
    ap.add_argument("--readme", type=Path, help="with --table: rewrite its quantum block")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--to", help=argparse.SUPPRESS)
    ap.add_argument("--horizon", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table:
        block = table(json.loads(args.table.read_text()))
        if args.readme:
            write_block(args.readme, block)
        print(block)
        return
    if args.child:
        Path(args.to).write_text(json.dumps(child(args.child, args.horizon)))
        return
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    wt = Path(tempfile.mkdtemp(prefix="bench_ref_"))
    subprocess.run(["git", "worktree", "add", "--detach", str(wt), args.ref], cwd=ROOT, check=True)
    try:
        rows = []
        for case in args.cases:
            times: dict = {"ref": [], "this": []}
            raw: dict = {"ref": [], "this": []}
            for _ in range(args.repeats):
                for name, tree in (("ref", wt), ("this", ROOT)):
                    r = run(tree, case)
                    raw[name].append(r)
                    times[name] += r["wall_per_virtual_s"]
                    print(case, name, [round(x, 5) for x in r["wall_per_virtual_s"]], flush=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append(
                {
                    "case": case,
                    "overrides": CASES[case],
                    "median_wall_per_virtual_s": med,
                    "ratio_ref_over_this": med["ref"] / med["this"],
                    "first_chunk_s": {k: [r["first_chunk_s"] for r in v] for k, v in raw.items()},
                    "runs": raw,
                }
            )
        week = None
        if args.week:
            r = run(ROOT, "fedasync_system_10k", horizon=604800.0)
            week = {"virtual_s": 604800.0, "wall_s": r["wall_per_virtual_s"][0] * 604800.0} | r
            print("week", round(week["wall_s"], 1), "s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, check=False)
    out = {
        "command": "python scripts/bench_quantum.py " + " ".join(sys.argv[1:]),
        "this": head.stdout.decode().strip(),
        "ref": args.ref,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "loadavg_end": os.getloadavg(),
        "rows": rows,
        "week_fedasync_system_10k": week,
    }
    if args.out.exists() and set(args.cases) != set(CASES):  # a subset: keep the other rows
        old = json.loads(args.out.read_text())
        keep = [r for r in old.get("rows", []) if r["case"] not in args.cases]
        out["rows"] = keep + rows
        out["earlier_rows_from"] = old.get("this")
        if week is None:
            out["week_fedasync_system_10k"] = old.get("week_fedasync_system_10k")
    args.out.write_text(json.dumps(out, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
