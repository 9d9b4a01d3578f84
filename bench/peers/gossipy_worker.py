"""gossipy 0.0.1 (PyPI gossipy-dfl, PyTorch) doing the FedAvg round's work: every client's
`TorchModelHandler` takes the global model, trains one local epoch (E steps of batch B after a
`randperm` reshuffle, gossipy's `_update`), and the global handler averages them (`_merge`).
gossipy has no FedAvg; this is the same per-client work its gossip nodes do, in a Python loop.
Torch threads: $PEER_TORCH_THREADS (default 1, as a per-client simulator runs one per core).

    bench/peers/.venvs/gossipy/bin/python bench/peers/gossipy_worker.py MODEL N ROUNDS DATA.npz
"""

import copy
import os
import sys
import time
from pathlib import Path

import torch
from gossipy.core import CreateModelMode
from gossipy.model import TorchModel
from gossipy.model.handler import TorchModelHandler
from gossipy.model.nn import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLASSES, WORKLOADS, emit, load  # noqa: E402


class TwoConvCNN(TorchModel):
    """Our CNNSmall / CNNFemnist in PyTorch (5x5 SAME convs, 2x2 max-pool, two dense layers)."""

    def __init__(self, c1: int, c2: int, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, c1, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(c1, c2, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(7 * 7 * c2, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, CLASSES),
        )

    def forward(self, x):
        return self.net(x)

    def init_weights(self) -> None:
        pass


def main() -> None:
    model, n, rounds, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(int(os.environ.get("PEER_TORCH_THREADS", "1")))
    w = WORKLOADS[model]
    px, py = load(Path(path))
    if model == "logreg":
        net = LogisticRegression(px.shape[-1], CLASSES)
        xs = torch.from_numpy(px)
    else:
        net = TwoConvCNN(*((16, 32, 128) if model == "cnn_small" else (32, 64, 2048)))
        xs = torch.from_numpy(px).permute(0, 1, 4, 2, 3).contiguous()  # NHWC -> NCHW
    ys = torch.from_numpy(py)

    def handler() -> TorchModelHandler:
        return TorchModelHandler(
            net=net,
            optimizer=torch.optim.SGD,
            optimizer_params={"lr": w["lr"]},
            criterion=torch.nn.CrossEntropyLoss(),
            local_epochs=1,
            batch_size=w["batch"],
            create_model_mode=CreateModelMode.MERGE_UPDATE,
        )

    server = handler()
    clients = [handler() for _ in range(n)]  # one per node, as a gossipy simulation holds them

    def one_round(group):
        state = copy.deepcopy(server.model.state_dict())
        for i, h in enumerate(group):
            h.model.load_state_dict(state)
            h._update((xs[i % len(xs)], ys[i % len(xs)]))
        server._merge(group)

    t0 = time.perf_counter()
    one_round(clients[: min(n, 4)])
    warm = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        one_round(clients)
        times.append(time.perf_counter() - t0)
    emit(
        {
            "warmup_s": warm,
            "round_s": times,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }
    )


if __name__ == "__main__":
    main()
