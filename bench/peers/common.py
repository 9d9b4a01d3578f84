"""The peer benchmark's shared workload definition and data (NumPy only: every venv imports it).

One workload = a model, N clients that all train in a synchronous FedAvg round, E local SGD
steps of batch B over each client's M = E x B examples (one local epoch, reshuffled each round,
as gossipy and FedJAX do it). Data are synthetic (x ~ N(0, 1), labels uniform over 10 classes):
a pool of P = min(N, 1000) distinct clients is written once to an .npz; client i reads pool row
i % P, so the work per round equals that of N distinct clients.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

WORKLOADS = {
    # name: input shape, E local steps, batch B, learning rate
    "logreg": {"shape": (64,), "steps": 10, "batch": 32, "lr": 0.1},
    "cnn_small": {"shape": (28, 28, 1), "steps": 2, "batch": 16, "lr": 0.05},
    "cnn_femnist": {"shape": (28, 28, 1), "steps": 2, "batch": 16, "lr": 0.05},
}
CLASSES = 10
POOL = 1000


def examples(model: str) -> int:
    """M: examples per client (one local epoch of E steps of batch B)."""
    w = WORKLOADS[model]
    return w["steps"] * w["batch"]


def data_path(root: Path, model: str, n: int) -> Path:
    """Where the pool for (model, N) lives; written on first use."""
    p = min(n, POOL)
    path = Path(root) / f"{model}_pool{p}.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        m, shape = examples(model), WORKLOADS[model]["shape"]
        x = rng.standard_normal((p, m, *shape), np.float32)
        y = rng.integers(0, CLASSES, (p, m)).astype(np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, y=y)
    return path


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x [P, M, ...] f32, y [P, M] i64)."""
    d = np.load(path)
    return d["x"], d["y"]


def emit(result: dict) -> None:
    """A worker's one output line (the orchestrator reads the last stdout line)."""
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
