"""How many gossip/DWA nodes fit in memory, per model: computed from parameter counts.

A gossip node stores its model and one queued model (inbox): 2 copies of P parameters, 4 bytes
each in float32 or 2 in bfloat16 (`sim.node_dtype`), plus its data shard (here: 60 float32
examples of the model's input, a Fashion-MNIST 1,000-node split) and ~64 bytes of scalars.
Usable memory: 80% of 24 GiB (CPU box) and 90% of 80 GiB (GPU). Training gathers only the
nodes due in a quantum, so its working set is bounded by the capacity, not N.

    python scripts/memory_table.py [--out results/memory_table.json]
"""

import argparse
import json
from pathlib import Path

import jax

from dl.models import init_params, make_model, param_count

MODELS = {  # name: (input shape, classes, input floats per example)
    "logreg": ((64,), 10, 64),
    "mlp": ((64,), 10, 64),
    "cnn_small": ((28, 28, 1), 10, 784),
    "cnn_femnist": ((28, 28, 1), 62, 784),
    "cnn_mnist": ((28, 28, 1), 10, 784),
    "char_gru": ((80,), 65, 80),
}
BUDGETS = {"cpu_24GiB": 0.8 * 24 * 2**30, "gpu_80GiB": 0.9 * 80 * 2**30}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("results/memory_table.json"))
    ap.add_argument("--examples", type=int, default=60)
    a = ap.parse_args()
    rows = []
    for name, (shape, classes, per_ex) in MODELS.items():
        model = make_model(name, shape, classes)
        dtype = "int32" if name.startswith("char") else None
        p = param_count(init_params(model, shape, jax.random.key(0), dtype))
        data = a.examples * per_ex * 4 + a.examples * 4
        row = {"model": name, "params": p}
        for dt, nbytes in (("f32", 4), ("bf16", 2)):
            per_node = 2 * p * nbytes + data + 64
            row[f"bytes_per_node_{dt}"] = per_node
            for b, cap in BUDGETS.items():
                row[f"nodes_{b}_{dt}"] = int(cap // per_node)
        rows.append(row)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=2))
    print("| model | params | nodes, 24 GiB CPU (f32 / bf16) | nodes, 80 GiB GPU (f32 / bf16) |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']:,} | {r['nodes_cpu_24GiB_f32']:,} / "
            f"{r['nodes_cpu_24GiB_bf16']:,} | {r['nodes_gpu_80GiB_f32']:,} / "
            f"{r['nodes_gpu_80GiB_bf16']:,} |"
        )


if __name__ == "__main__":
    main()
