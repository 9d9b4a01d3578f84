"""Server optimizers applied to the FL pseudo-gradient `server - average(client models)`.

Reddi et al., "Adaptive Federated Optimization" (ICLR 2021): FedAvg is SGD with lr 1 on the
pseudo-gradient, FedAvgM adds server momentum (Hsu et al. 2019), FedAdam uses Adam.
"""

from dataclasses import dataclass

import optax

from dl.errors import ConfigError


@dataclass(frozen=True)
class ServerOptSpec:
    name: str = "sgd"  # [sgd, momentum, adam]
    lr: float = 1.0
    momentum: float = 0.9
    b1: float = 0.9
    b2: float = 0.99
    eps: float = 1e-3


def make_server_optimizer(spec: ServerOptSpec) -> optax.GradientTransformation:
    """FedAvg (`sgd`, lr 1), FedAvgM (`momentum`) or FedAdam (`adam`)."""
    if spec.lr <= 0:
        raise ConfigError(f"algorithm.server_opt.lr must be > 0, got {spec.lr}")
    if spec.name == "sgd":
        return optax.sgd(spec.lr)
    if spec.name == "momentum":
        return optax.sgd(spec.lr, momentum=spec.momentum)
    if spec.name == "adam":
        return optax.adam(spec.lr, b1=spec.b1, b2=spec.b2, eps=spec.eps)
    raise ConfigError(
        f"unknown algorithm.server_opt.name '{spec.name}' (choose from: sgd, momentum, adam)"
    )
