"""Same-seed metrics digests: the behaviour record a refactor must keep (issues 15, 17).

Runs every algorithm under every server scenario (and a system-only, a sharded-padding and a
several-task run) on tiny configs with a fixed seed, in this process, and hashes each run's
`metrics.jsonl` rows without the wall-clock field. `--record` writes results/digests.json;
the default compares with it and exits 1 naming every cell whose digest changed.

    python scripts/digests.py --record      # before a refactor
    python scripts/digests.py               # after it: every digest identical
    python scripts/digests.py --only dwa    # cells whose name contains 'dwa'
    python scripts/digests.py --without inbox_overflow  # a field the change adds, dropped

Digests are exact (the rows' JSON text), so they hold on one machine and JAX version; the
file records both.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "digests.json"
VOLATILE = ("wall_time_s",)  # host timings: differ run to run

BASE = [
    "task=digits_logreg",
    "trace=diurnal",
    "sim.num_nodes=12",
    "sim.duration_s=1200",
    "sim.eval_every_s=300",
    "sim.progress=false",
    "logger=disabled",
    "seed=3",
]
ALGORITHMS = {
    "fedavg": ["algorithm=fedavg", "algorithm.clients_per_round=4"],
    "fedasync": ["algorithm=fedasync", "algorithm.concurrency=4", "algorithm.max_arrivals=4"],
    "fedbuff": [
        "algorithm=fedbuff",
        "algorithm.concurrency=4",
        "algorithm.max_arrivals=4",
        "algorithm.buffer_k=2",
    ],
    "gossip": [
        "algorithm=gossip",
        "algorithm.max_trainings=4",
        "algorithm.period_s=60",
        "algorithm.quantum_s=5",
    ],
    "dwa": [
        "algorithm=dwa",
        "algorithm.concurrency=4",
        "algorithm.max_arrivals=4",
        "algorithm.max_trainings=4",
        "algorithm.period_s=60",
        "algorithm.quantum_s=5",
    ],
}
SERVERS = {
    "always": ["server=always"],
    "outage": ["server=outage_2h", "server.outages=[[300,900]]"],
    "flaky": ["server=flaky", "server.mean_up_s=600", "server.mean_down_s=300"],
    "periodic": ["server=periodic", "server.period_s=600", "server.down_fraction=0.5"],
    "never": ["server=never"],
}
EXTRA = {
    # system-only: clock, traces, messages, energy; no models
    "fedasync/system_only": ALGORITHMS["fedasync"] + ["sim.train=false"],
    "gossip/system_only": ALGORITHMS["gossip"] + ["sim.train=false"],
    # token account, partitions, queue=all, lte energy: the gossip engine's other branches
    "gossip/token_partitions": ALGORITHMS["gossip"]
    + ["algorithm.flow=randomized", "algorithm.partitions=2", "energy=lte"],
    "gossip/kregular_queue_all": ALGORITHMS["gossip"]
    + ["algorithm.topology=kregular", "algorithm.degree=4", "algorithm.queue=all"],
    "dwa/fedbuff_lam": ALGORITHMS["dwa"]
    + ["algorithm.server_kind=fedbuff", "algorithm.lam_max=0.8", "algorithm.nu=2.0"],
    "fedavg/dais_rule": ALGORITHMS["fedavg"]
    + ["+algorithm.server_rule=dais", "algorithm.upload_frac=0.5"],
    "fedasync/mlp_flash": ALGORITHMS["fedasync"] + ["task=digits_mlp", "trace=flash"],
    # bfloat16 node storage (stored as bits, dl.arrays): gossip, gossip with queue=all (which
    # failed before 4e3076d: the merged inbox came back as float32), and DWA
    "gossip/bfloat16": ALGORITHMS["gossip"] + ["sim.node_dtype=bfloat16"],
    "gossip/queue_all_bfloat16": ALGORITHMS["gossip"]
    + ["sim.node_dtype=bfloat16", "algorithm.queue=all"],
    "dwa/bfloat16": ALGORITHMS["dwa"]
    + ["sim.node_dtype=bfloat16", "server=outage_2h"]
    + ["server.outages=[[300,900]]"],
}


def cells(only: str | None) -> dict[str, list[str]]:
    """{cell name: overrides}: algorithm x server (FedAvg only with the server up) + extras."""
    out = {}
    for a, ao in ALGORITHMS.items():
        for s, so in SERVERS.items():
            if a == "fedavg" and s != "always":
                continue  # FedAvg refuses other server scenarios (a ConfigError)
            out[f"{a}/{s}"] = BASE + ao + so
    out |= {k: BASE + v for k, v in EXTRA.items()}
    out["two_task"] = ["experiment=two_task_stunner", "sim.num_nodes=40"] + BASE[3:]  # data root
    return {k: v for k, v in out.items() if only is None or only in k}


def digest(metrics: Path, without: tuple[str, ...] = ()) -> tuple[str, int]:
    """sha256 over the rows' canonical JSON without the volatile fields (and `without`: fields
    a change adds, to compare with a record made before it); and the row count."""
    h, n = hashlib.sha256(), 0
    for line in metrics.read_text().splitlines():
        row = json.loads(line).items()
        # a field is dropped by its name, also under a task's prefix ("spam/inbox_overflow")
        row = {k: v for k, v in row if k not in VOLATILE and k.split("/")[-1] not in without}
        h.update(json.dumps(row, sort_keys=True).encode() + b"\n")
        n += 1
    return h.hexdigest()[:16], n


def run_cell(overrides: list[str], without: tuple[str, ...] = ()) -> tuple[str, int]:
    from dl.resume_config import compose_resolved
    from dl.simulate import simulate

    cfg = compose_resolved(overrides)
    with tempfile.TemporaryDirectory() as d:
        simulate(cfg, Path(d))
        return digest(Path(d) / "metrics.jsonl", without)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help="write results/digests.json")
    ap.add_argument("--only", help="cells whose name contains this")
    ap.add_argument("--file", type=Path, default=OUT)
    ap.add_argument(
        "--without", default="", help="comma-separated fields to drop (added since the record)"
    )
    args = ap.parse_args()
    without = tuple(f for f in args.without.split(",") if f)
    if without and args.record:
        print("error: --without compares with a record; record without it")
        return 2
    import jax

    got = {}
    for name, ov in cells(args.only).items():
        d, n = run_cell(ov, without)
        got[name] = {"digest": d, "rows": n, "overrides": ov}
        print(f"{name:28s} {d} ({n} rows)", flush=True)
    if args.record:
        old = json.loads(args.file.read_text())["cells"] if args.file.exists() else {}
        rec = {"jax": jax.__version__, "backend": jax.default_backend(), "cells": old | got}
        args.file.write_text(json.dumps(rec, indent=1) + "\n")
        print(f"recorded {len(got)} cells -> {args.file}")
        return 0
    if not args.file.exists():
        print(f"error: {args.file} does not exist (record it first with --record)")
        return 2
    want = json.loads(args.file.read_text())["cells"]
    bad = [k for k, v in got.items() if want.get(k, {}).get("digest") != v["digest"]]
    for k in bad:
        print(f"CHANGED {k}: {want.get(k, {}).get('digest')} -> {got[k]['digest']}")
    print(f"{len(got) - len(bad)} of {len(got)} digests identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
