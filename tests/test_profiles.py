"""Device profiles: constant, FLASH synthetic-from-real-catalogues, SkipTrain power calibration."""

import json

import numpy as np
import pytest

from dl.devices.profiles import (
    FLASH_DIR,
    constant_profiles,
    flash_profiles,
    load_flash_catalogue,
    load_speed_distri,
    reachable_models,
    skiptrain_power_w,
)
from dl.errors import ConfigError, DataError

needs_data = pytest.mark.needs_data(FLASH_DIR)  # tests/conftest.py: skip, or fail in CI


def test_constant_profiles():
    p = constant_profiles(4, ms_per_sample=5.0, up_kbps=1e3, down_kbps=2e3, power_w=3.0)
    assert p.ms_per_sample.shape == (4,) and p.ms_per_sample.dtype == np.float32
    assert p.device_id.dtype == np.int32 and np.all(np.asarray(p.device_id) == -1)
    assert np.all(np.asarray(p.down_kbps) == 2e3)
    with pytest.raises(ConfigError):
        constant_profiles(2, ms_per_sample=0.0)


@needs_data
def test_flash_profiles_shapes_and_formula(data_root):
    p = flash_profiles(data_root, 500, seed=0, ref_ms_per_sample=2.0)
    names, scores = load_flash_catalogue(data_root)
    assert len(names) == 307
    ids = np.asarray(p.device_id)
    assert ids.min() >= 0 and ids.max() < 307
    expect = 2.0 * np.median(scores) / scores[ids]
    np.testing.assert_allclose(np.asarray(p.ms_per_sample), expect, rtol=1e-6)
    speed = load_speed_distri(data_root)
    assert speed.shape == (19, 4)
    up, down = np.asarray(p.up_kbps), np.asarray(p.down_kbps)
    assert up.min() >= 50 * 8 and down.min() >= 50 * 8  # floor 50 KB/s = 400 kbit/s
    # KB/s -> kbit/s: the population mean is near 8x the mean of the per-phone means
    assert np.mean(down) == pytest.approx(8 * speed[:, 0].mean(), rel=0.15)
    assert np.all(np.asarray(p.power_w) == 3.0)


@needs_data
def test_flash_profiles_deterministic_and_options(data_root):
    a = flash_profiles(data_root, 200, seed=7)
    b = flash_profiles(data_root, 200, seed=7)
    c = flash_profiles(data_root, 200, seed=8)
    for f in ("ms_per_sample", "up_kbps", "down_kbps", "device_id"):
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)))
    assert not np.array_equal(np.asarray(a.device_id), np.asarray(c.device_id))
    names, _ = load_flash_catalogue(data_root)
    pool = set(reachable_models(data_root, names).tolist())
    assert len(pool) == 113
    r = flash_profiles(data_root, 300, seed=1, restrict_to_real=True, power_w_range=(1.0, 5.0))
    assert set(np.asarray(r.device_id).tolist()) <= pool
    pw = np.asarray(r.power_w)
    assert pw.min() >= 1.0 and pw.max() <= 5.0 and pw.std() > 0.5
    cpu = flash_profiles(data_root, 300, seed=1, score="cpu_f")
    ms = np.asarray(cpu.ms_per_sample)
    assert ms.max() / ms.min() < 45  # CPU-F scores span 105..4310
    with pytest.raises(ConfigError):
        flash_profiles(data_root, 3, seed=0, score="gpu")


def test_flash_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="benchmark2score.json"):
        flash_profiles(tmp_path, 3, seed=0)
    with pytest.raises(DataError, match="no data root"):
        flash_profiles(None, 3, seed=0)
    d = tmp_path / FLASH_DIR
    d.mkdir()
    (d / "benchmark2score.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt json .*benchmark2score.json"):
        flash_profiles(tmp_path, 3, seed=0)
    (d / "benchmark2score.json").write_text(json.dumps({"A": 100, "B": 300}))
    (d / "speed_distri.json").write_text(json.dumps({"x": {"down_u": 10}}))
    with pytest.raises(DataError, match="speed_distri.json"):
        flash_profiles(tmp_path, 3, seed=0)


def test_flash_tiny_catalogue(tmp_path):
    d = tmp_path / FLASH_DIR
    d.mkdir()
    (d / "benchmark2score.json").write_text(json.dumps({"A": 100, "B": 400}))
    speed = {"p": {"down_u": 1000, "down_sigma": 0, "up_u": 10, "up_sigma": 0}}
    (d / "speed_distri.json").write_text(json.dumps(speed))
    p = flash_profiles(tmp_path, 50, seed=3, ref_ms_per_sample=10.0, ref_score=200.0)
    ms = np.asarray(p.ms_per_sample)
    assert set(np.round(ms, 4).tolist()) == {20.0, 5.0}
    np.testing.assert_allclose(np.asarray(p.down_kbps), 8000.0)
    np.testing.assert_allclose(np.asarray(p.up_kbps), 400.0)  # 10 KB/s clipped at 50 KB/s


@pytest.mark.needs_data("device_energy_skiptrain")  # SkipTrain's folder, not FLASH's
def test_skiptrain_power_is_max_power_times_time(data_root):
    pw = skiptrain_power_w(data_root)
    for stem in ("Energy_traces_CIFAR-10", "Energy_traces_Femnist"):
        np.testing.assert_allclose(pw[stem], pw[f"{stem}:max_power"], rtol=1e-3)
        assert 8.0 < pw[stem].min() and pw[stem].max() < 18.0


def test_skiptrain_missing(tmp_path):
    with pytest.raises(DataError, match="Energy_traces"):
        skiptrain_power_w(tmp_path)
