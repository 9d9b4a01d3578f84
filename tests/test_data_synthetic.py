"""The synthetic Gaussian-class dataset (dl/data/synthetic.py): shapes, dtypes, seeding, class
balance, option checks, and a 20,000-node world built from conf/task/synthetic_logreg.yaml."""

import time

import jax
import numpy as np
import pytest

from dl.algorithms.base import make_runner
from dl.analysis.launch import compose
from dl.build import build
from dl.data import DATASET_NAMES, load_dataset
from dl.errors import ConfigError


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_shapes_and_dtypes():
    ds = load_dataset(
        "synthetic", None, examples=50, test_examples=20, input_shape=[4, 3], classes=5
    )
    assert "synthetic" in DATASET_NAMES and ds.name == "synthetic"
    assert ds.x_train.shape == (50, 4, 3) and ds.x_test.shape == (20, 4, 3)
    assert ds.y_train.shape == (50,) and ds.y_test.shape == (20,)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int32
    assert ds.input_shape == (4, 3) and ds.num_classes == 5 and not ds.is_sequence
    assert set(np.unique(ds.y_train)) == set(range(5))


def test_classes_are_balanced_exactly():
    # example i has label i % 5 before the shuffle: of 53 examples, labels 0, 1, 2 get
    # ceil(53 / 5) = 11 each and labels 3, 4 get floor(53 / 5) = 10 (3 * 11 + 2 * 10 = 53);
    # 20 test examples: 4 per class
    ds = load_dataset("synthetic", None, examples=53, test_examples=20, classes=5)
    assert np.bincount(ds.y_train).tolist() == [11, 11, 11, 10, 10]
    assert np.bincount(ds.y_test).tolist() == [4, 4, 4, 4, 4]
    assert not np.array_equal(ds.y_train, np.arange(53) % 5)  # shuffled


def test_same_seed_same_data_other_seed_other_data():
    a = load_dataset("synthetic", None, examples=200, seed=3)
    b = load_dataset("synthetic", None, examples=200, seed=3)
    c = load_dataset("synthetic", None, examples=200, seed=4)
    for f in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.y_train, c.y_train)


def test_noise_free_examples_are_their_class_means():
    # noise = 0: every example is exactly mu_{y}; train and test share the means; |mu_c| is
    # separation * chi_D / sqrt(D), D = 400: mean ~ separation, std ~ separation / sqrt(2 D)
    # = 0.035 separation, so 2.0 +- 15% is over 4 std wide
    ds = load_dataset(
        "synthetic", None, examples=40, test_examples=10, input_shape=[20, 20], classes=4,
        separation=2.0, noise=0.0,
    )  # fmt: skip
    means = np.stack([ds.x_train[ds.y_train == c][0] for c in range(4)])  # [4, 20, 20]
    assert np.array_equal(ds.x_train, means[ds.y_train])
    assert np.array_equal(ds.x_test, means[ds.y_test])
    norms = np.linalg.norm(means.reshape(4, -1), axis=1)
    assert np.all(np.abs(norms - 2.0) < 0.3), norms


def test_noise_alone_is_standard_normal():
    # separation = 0: x ~ N(0, noise^2) per coordinate; 20,000 x 8 draws: the mean's std is
    # 3 / sqrt(160000) = 0.0075 (bound 0.05), the std's relative std ~ 1 / sqrt(2 * 160000)
    ds = load_dataset("synthetic", None, examples=20_000, input_shape=[8], separation=0.0, noise=3)
    assert abs(float(ds.x_train.mean())) < 0.05
    assert abs(float(ds.x_train.std()) - 3.0) < 0.05


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("classes", 1, "classes must be an integer >= 2"),
        ("examples", 3, "examples must be an integer >= 10"),  # fewer than the 10 classes
        ("test_examples", 2.5, "test_examples must be an integer"),
        ("input_shape", [8, 0], "input_shape must be a non-empty list of positive integers"),
        ("input_shape", [], "input_shape must be"),
        ("noise", -1.0, "noise must be a finite number >= 0"),
        ("separation", "big", "separation must be a finite number"),
        ("seed", -1, "seed must be an integer >= 0"),
    ],
)
def test_bad_value_is_one_config_error_line(option, value, named):
    with pytest.raises(ConfigError) as err:
        load_dataset("synthetic", None, **{option: value})
    assert named in one_line(err) and "synthetic" in str(err.value)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        load_dataset("synthetic", None, exampels=100)
    msg = one_line(err)
    assert "exampels" in msg and "examples" in msg and "input_shape" in msg


def test_bad_option_through_the_config_stops_the_build():
    cfg = compose(["task=synthetic_logreg", "logger=disabled", "task.dataset_options.classes=1"])
    with pytest.raises(ConfigError) as err:
        build(cfg)
    assert "classes must be an integer >= 2" in one_line(err)


def test_build_and_gossip_20000_nodes():
    # 20,000 nodes x 16 examples (iid: np.array_split of 320,000 gives every node 16), system
    # only, one 1-s quantum of gossip through the algorithm interface
    n, m = 20_000, 16
    cfg = compose(
        [
            "task=synthetic_logreg",
            "algorithm=gossip",
            "logger=disabled",
            f"sim.num_nodes={n}",
            f"task.dataset_options.examples={n * m}",
            "sim.train=false",
            "sim.shard=false",
        ]
    )
    t0 = time.perf_counter()
    built = build(cfg)
    build_s = time.perf_counter() - t0
    assert built.env.x.shape == (n, m, 64) and built.env.y.shape == (n, m)
    assert built.nodes.counts.min() == built.nodes.counts.max() == m
    assert build_s < 60, build_s  # ~3 s at load 5 on 2 cores; 60 s is a broken-scaling bound
    runner = make_runner(cfg, built, "vmap")
    st = runner.chunk(runner.init, jax.random.key(0), 1.0)
    assert runner.clock(st) == 1.0
    # every node first sends at a phase ~ U[0, 10 s) (init_gossip), so in the first 1-s quantum
    # Binomial(N, 0.1) send: mean 2,000, std sqrt(N 0.1 0.9) = 42; bound: +-5 std
    sent = float(st.counters["messages_sent"])
    assert abs(sent - 0.1 * n) < 5 * 42.5, sent
