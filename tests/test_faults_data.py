"""Fault injection (issue 14), data files and scripts: a non-finite feature, damaged STUNner
npz files, a FedScale pickle with NaN, bad plot_run input. Each ends in one line naming the file
and the defect; valid outputs are kept."""

import subprocess
import sys
from pathlib import Path

import pytest
from faults_common import REPO


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # standardizing the inf column
def test_non_finite_feature_is_a_data_error_not_divergence(tmp_path):
    import numpy as np

    from dl.data.datasets import load_dataset
    from dl.errors import DataError

    rng = np.random.default_rng(0)
    x = rng.random((60, 57))
    x[5, 3] = np.inf
    rows = [",".join(f"{v:g}" for v in r) + f",{i % 2}" for i, r in enumerate(x)]
    (tmp_path / "spambase").mkdir()
    (tmp_path / "spambase" / "spambase.data").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset("spambase", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "non-finite" in msg and "spambase" in msg and str(tmp_path) in msg


def _stunner_npz(path: Path) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        user_index=np.zeros(2, np.int32),
        first_online=np.array([True, False]),
        start_ms=np.array([0, 1000], np.int64),
        tz_hours=np.zeros(2, np.int8),
        offsets=np.array([0, 2, 3], np.int64),
        durations_ms=np.array([500, 700, 900], np.int64),
    )


@pytest.mark.parametrize(
    "fault,needle",
    [
        ("random", "not an npz (zip) archive"),
        ("flip", "damaged archive"),
        ("truncate", "corrupt STUNner npz"),
        ("pickle", "holds pickled objects"),
        ("missing", "lacks array(s) durations_ms"),
        ("malformed", "malformed STUNner trace"),
    ],
)
def test_bad_stunner_npz_is_one_line_naming_file_and_defect(tmp_path, fault, needle):
    import numpy as np

    from dl.errors import DataError
    from dl.traces.stunner import FOLDER, load_stunner

    path = tmp_path / FOLDER / "stunner_sessions_thr100.npz"
    _stunner_npz(path)
    data = bytearray(path.read_bytes())
    if fault == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif fault == "flip":
        i = data.index(b"durations_ms.npy") + 80  # inside that member's data
        data[i : i + 16] = bytes(b ^ 0xFF for b in data[i : i + 16])
        path.write_bytes(bytes(data))
    elif fault == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif fault in ("pickle", "missing", "malformed"):
        with np.load(path) as z:
            arrays = dict(z)
        if fault == "pickle":
            arrays["durations_ms"] = np.array([{"a": 1}], dtype=object)
        elif fault == "missing":
            del arrays["durations_ms"]
        else:
            arrays["durations_ms"] = np.array([500, -7, 900])
        np.savez(path, **arrays)
    with pytest.raises(DataError) as e:
        load_stunner(tmp_path, 100)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg and str(path) in msg, msg


def test_fedscale_converter_refuses_nan_and_keeps_the_valid_output(tmp_path):
    import pickle

    sys.path.insert(0, str(REPO / "scripts"))
    import convert_fedscale

    good = {1: {"computation": 10.0, "communication": 500.0}}
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(good))
    assert (
        convert_fedscale.main(["--capacity", str(tmp_path / "good.pkl"), "--out", str(tmp_path)])
        == 0
    )
    before = (tmp_path / "fedscale_capacity.npz").read_bytes()
    for bad_value in (float("nan"), -3.0):
        bad = {
            1: {"computation": 10.0, "communication": 500.0},
            2: {"computation": bad_value, "communication": 1.0},
        }
        (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad))
        assert (
            convert_fedscale.main(["--capacity", str(tmp_path / "bad.pkl"), "--out", str(tmp_path)])
            == 2
        )
        assert (tmp_path / "fedscale_capacity.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.pkl",
        "fedscale_capacity.npz",
        "good.pkl",
    ]


def test_plot_run_faults_are_one_line(tmp_path):
    m = tmp_path / "metrics.jsonl"
    m.write_text(
        '{"virtual_time_s": 0.0, "test_accuracy": 0.1}\n'
        '{"virtual_time_s": 120.0, "test_accuracy": 0.5}\n'
    )
    torn = tmp_path / "torn.jsonl"
    torn.write_text(m.read_text() + '{"virtual_time_s": 240.0, "test_acc')
    plot = [sys.executable, str(REPO / "scripts" / "plot_run.py")]
    cases = [
        ([str(m), "--x", "bogus", "--out", str(tmp_path / "a.png")], "--x bogus"),
        ([str(torn), "--out", str(tmp_path / "b.png")], "line 3 is not a JSON object"),
        ([str(m), "--out", "/proc/no/such/a.png"], "cannot write --out"),
    ]
    for args, needle in cases:
        r = subprocess.run([*plot, *args], capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and needle in lines[0], r.stderr[-1500:]
