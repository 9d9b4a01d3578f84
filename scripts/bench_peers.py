"""Our whole FedAvg round against FedJAX, gossipy and Flower on the same workloads (issue 16).

Each peer runs in its own virtual environment under bench/peers/.venvs/<peer>, created on
demand from bench/peers/requirements-<peer>.txt (pinned versions); a peer that cannot be
installed is recorded with pip's last error line and skipped. Workloads (bench/peers/common.py):
logistic regression with E = 10 local steps of batch 32 at N = 100 / 1,000 / 10,000 clients
per round; the small and the FEMNIST-style CNN with E = 2 steps of batch 16 at N = 10 clients.
Every (workload, N) is timed interleaved, A B C D A B C D..., `--repeats` times (each run is a
fresh process: set-up and the first round, which compiles, are not timed; then a few timed
rounds, median); the load average is recorded before every run. Our worker runs with glibc's
huge-page tunable, as `dl.run` sets it (`dl.hugepages`); the peers' in the environment as it
is. Ratios are peer round time / our round time ("ours is Rx faster"): the median over
repeats of the per-repeat ratio, with the range. Not part of CI. Writes
results/bench_peers.json and (with --readme) the README table.

    .venv/bin/python scripts/bench_peers.py [--repeats 3] [--peers fedjax gossipy flower]
        [--only logreg] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dl import hugepages
from dl.analysis.readme import publish

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / "bench/peers"
VENVS = PEERS_DIR / ".venvs"
PEERS = ("fedjax", "gossipy", "flower")
# (model, N, timed rounds, peers that run it)
PLAN = [
    ("logreg", 100, 5, PEERS),
    ("logreg", 1000, 2, PEERS),
    ("logreg", 10000, 1, ("fedjax", "gossipy")),  # Flower: ~minutes per round through Ray
    ("cnn_small", 10, 3, ("fedjax", "gossipy")),
    ("cnn_femnist", 10, 2, ("fedjax", "gossipy")),
]
PEER_NOTES = {
    "flower": "logreg only (NumPy clients); N = 10,000 not run (Ray round time)",
    "gossipy": "gossipy has no FedAvg: each client's handler trains one local epoch, the server "
    "handler averages them (PyTorch, 1 thread)",
    "fedjax": "fedjax.algorithms.fed_avg with haiku models, jax 0.4.13 in its own venv",
}


def ensure_venv(peer: str, log=print) -> dict:
    """The peer's venv (created and installed on first use): {"python"} or {"error"}."""
    py = VENVS / peer / "bin/python"
    req = PEERS_DIR / f"requirements-{peer}.txt"
    if not py.exists():
        log(f"creating {VENVS / peer} from {req.name}")
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / peer)], check=True)
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "-r", str(req)],
            capture_output=True,
            text=True,
            timeout=1500,
        )
        if r.returncode != 0:
            lines = [x for x in r.stderr.splitlines() if "ERROR" in x] or r.stderr.splitlines()
            return {"error": (lines[-1] if lines else f"pip exit {r.returncode}")[:400]}
    r = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True)
    pins = [x.strip() for x in req.read_text().splitlines() if x and not x.startswith("#")]
    names = {p.split("==")[0].split("[")[0].lower() for p in pins}
    frozen = [x for x in r.stdout.splitlines() if x.split("==")[0].lower() in names]
    return {"python": str(py), "versions": frozen}


def worker_env(who: str) -> dict:
    """A worker's environment. Each side runs as its users run it: ours with glibc's huge-page
    tunable, as `dl.run` sets it (`dl.hugepages`; DL_HUGEPAGES=0: without), the peers in the
    environment as it is (with the tunable, gossipy's first FEMNIST-style rounds took 0.84-0.91
    s instead of 0.51-0.57 s, then ~0.5 s either way: measured, so it is not imposed on them)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return hugepages.with_tunable(env) if who == "ours" and hugepages.wanted(env) else env


def run_worker(who: str, python: str, model: str, n: int, rounds: int, data: Path) -> dict:
    """One worker process; its timed rounds, or the error."""
    script = PEERS_DIR / ("ours.py" if who == "ours" else f"{who}_worker.py")
    env = worker_env(who)
    load = os.getloadavg()
    t0 = time.perf_counter()
    cmd = [python, str(script), model, str(n), str(rounds), str(data)]
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s", "loadavg": list(load)}
    out = {"loadavg": list(load), "process_s": time.perf_counter() - t0}
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        err = [x for x in r.stderr.splitlines() if x.strip()] or [f"exit {r.returncode}"]
        return out | {"error": err[-1][:400]}
    res = json.loads(lines[-1])
    return out | res | {"median_round_s": statistics.median(res["round_s"])}


def bench(peers, repeats: int, only, log=print) -> dict:
    """Runs the plan; returns the JSON-ready result."""
    sys.path.insert(0, str(PEERS_DIR))
    from common import data_path

    envs = {p: ensure_venv(p, log) for p in peers}
    ours_py = sys.executable
    groups = []
    for model, n, rounds, who in PLAN:
        if only and model not in only:
            continue
        data = data_path(VENVS / "data", model, n)
        runners = ["ours"] + [p for p in who if p in peers and "python" in envs[p]]
        runs = {w: [] for w in runners}
        for rep in range(repeats):
            for w in runners:
                py = ours_py if w == "ours" else envs[w]["python"]
                res = run_worker(w, py, model, n, rounds, data)
                runs[w].append(res)
                shown = res.get("median_round_s", res.get("error"))
                log(f"{model} N={n} rep {rep + 1} {w}: {shown} (load {res['loadavg'][0]:.1f})")
        groups.append({"model": model, "nodes": n, "rounds": rounds, "runs": runs})
        groups[-1]["ratios"] = ratios(runs)
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "glibc_tunables": {
                w: worker_env(w).get("GLIBC_TUNABLES", "") for w in ("ours", *peers)
            },
        },
        "repeats": repeats,
        "peers": {p: envs[p] | {"note": PEER_NOTES[p]} for p in peers},
        "groups": groups,
    }


def ratios(runs: dict) -> dict:
    """Peer / ours round time per repeat (paired in order), median and range."""
    out = {}
    ours = [r.get("median_round_s") for r in runs["ours"]]
    for peer, rs in runs.items():
        if peer == "ours":
            continue
        pairs = [
            p["median_round_s"] / o
            for o, p in zip(ours, rs)
            if o and "median_round_s" in p and o > 0
        ]
        err = next((r["error"] for r in rs if "error" in r), None)
        out[peer] = (
            {
                "median": statistics.median(pairs),
                "min": min(pairs),
                "max": max(pairs),
                "n": len(pairs),
            }
            if pairs
            else {"error": err or "no paired runs"}
        )
    return out


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return "failed"
    return f"{r['median']:.1f}x ({r['min']:.1f}-{r['max']:.1f})"


def table(result: dict) -> str:
    """README table: ours over peer (peer round time / ours), one row per peer."""
    groups = result["groups"]
    head = [f"{g['model']} N = {g['nodes']:,}" for g in groups]
    lines = ["| ours over peer | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    ours = []
    for g in groups:
        ts = [r["median_round_s"] for r in g["runs"]["ours"] if "median_round_s" in r]
        ours.append(f"{statistics.median(ts):.3g} s" if ts else "failed")
    lines.append("| our round (median) | " + " | ".join(ours) + " |")
    for peer, info in result["peers"].items():
        if "error" in info:
            lines.append(f"| {peer} | not installed: `{info['error']}` |" + " |" * (len(head) - 1))
            continue
        cells = [_cell(g["ratios"].get(peer)) for g in groups]
        lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    loads = [r["loadavg"][0] for g in groups for rs in g["runs"].values() for r in rs]
    lines += [
        "",
        f"Medians of {result['repeats']} interleaved repeats (range in brackets); 1-min load "
        f"average {min(loads):.1f}-{max(loads):.1f} during the runs. Errors: "
        + (
            "; ".join(
                f"{g['model']} N={g['nodes']} {w} repeat {i + 1}: {r['error']}"
                for g in groups
                for w, rs in g["runs"].items()
                for i, r in enumerate(rs)
                if "error" in r
            )
            or "none"
        )
        + ".",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", help="models to run (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "results/bench_peers.json")
    ap.add_argument("--readme", action="store_true", help="rewrite the README table block")
    a = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    result = bench(a.peers, a.repeats, a.only, log)
    result["wall_s"] = time.perf_counter() - t0
    publish(result, a.out, table(result), "bench_peers" if a.readme else None)
    return result


if __name__ == "__main__":
    main()
