"""FedBuff (Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation",
AISTATS 2022) on the async event clock: FedAsync's engine with the buffered rule
`dl.rules.fedbuff` (K staleness-weighted deltas, then `w <- w - eta_g * buffer / K`).
"""

from dl.algorithms.base import Algorithm
from dl.algorithms.fedasync import make_async_runner

ALGORITHM = Algorithm(
    "fedbuff", "async", lambda cfg, world, s: make_async_runner(cfg, world, s, "fedbuff")
)
