"""How a per-node function is mapped over the node axis: `vmap`, `lax.map` or chunked vmap.

DESIGN.md (measured on a 2-core CPU, jax 0.10.2): `vmap` over a convolutional model lowers to a
grouped convolution that ran 17-85x slower than a loop of per-node steps, while `lax.map`
matched the loop; for the logistic model `vmap` was 6x faster than the loop. On GPUs `vmap` is
expected to win for every model. `auto` therefore picks `map` for convolutional models on CPU
and `vmap` otherwise; every choice can be overridden (`sim.node_map=...`). `chunked` vmaps
`sim.node_map_chunk` nodes at a time; the chunk size travels in the strategy string
(`"chunked:16"`), so the engines that pass the strategy on need no extra argument.
"""

from collections.abc import Callable

import jax

from dl.errors import ConfigError

STRATEGIES = ("auto", "vmap", "map", "chunked")
CONV_MODELS = ("cnn_small", "cnn_femnist", "cnn_mnist")


def resolve_strategy(
    strategy: str, model_name: str, backend: str | None = None, chunk: int | None = None
) -> str:
    """Turns `auto` into a concrete strategy for `model_name` on `backend` (default: JAX's);
    `chunked` becomes `chunked:<chunk>` when `chunk` (`sim.node_map_chunk`) is given."""
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown sim.node_map '{strategy}' (choose from: {', '.join(STRATEGIES)})"
        )
    if strategy == "chunked" and chunk is not None:
        if int(chunk) != chunk or chunk < 1:
            raise ConfigError(f"sim.node_map_chunk must be an integer >= 1, got {chunk}")
        return f"chunked:{int(chunk)}"
    if strategy != "auto":
        return strategy
    backend = backend or jax.default_backend()
    if backend == "cpu" and model_name in CONV_MODELS:
        return "map"
    return "vmap"


def map_nodes(fn: Callable, strategy: str, chunk: int = 8) -> Callable:
    """Maps `fn` over the leading axis of every argument with the given concrete strategy
    (`chunked:K` overrides `chunk` with K)."""
    if strategy.startswith("chunked:"):
        strategy, chunk = "chunked", int(strategy.split(":", 1)[1])
    if strategy == "vmap":
        return jax.vmap(fn)
    if strategy == "map":
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    if strategy == "chunked":
        return lambda *args: jax.lax.map(lambda a: fn(*a), args, batch_size=chunk)
    raise ConfigError(f"node-map strategy '{strategy}' is not concrete (resolve 'auto' first)")
