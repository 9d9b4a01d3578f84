"""Data layer: locate the data root, load datasets into host memory, partition them over nodes.

Typical use::

    root = resolve_data_root(cfg.data.root)          # Path or None (only digits works then)
    ds = load_dataset("fmnist", root)                 # Dataset of numpy arrays
    nd = partition(ds, 100, "dirichlet", seed=0)      # NodeData [N, M, ...] + counts + mask
"""

from dl.data.dataset import Dataset
from dl.data.datasets import DATASET_NAMES, load_dataset
from dl.data.partition import (
    SCHEMES,
    NodeData,
    gather_nodes,
    label_histogram,
    partition,
    partition_indices,
)
from dl.data.root import require_file, resolve_data_root

__all__ = [
    "DATASET_NAMES",
    "SCHEMES",
    "Dataset",
    "NodeData",
    "gather_nodes",
    "label_histogram",
    "load_dataset",
    "partition",
    "partition_indices",
    "require_file",
    "resolve_data_root",
]
