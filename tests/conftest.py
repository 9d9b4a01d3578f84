"""Test-wide settings: no W&B network, deterministic CPU; the one data root the tests read.

Tests that need files under the data root ($DL_DATA_ROOT, else ../shared/data beside the
checkout; `dl.data.root`) take the `data_root` fixture and say which folders they need with
`@pytest.mark.needs_data("folder", ...)`. A missing folder skips the test, unless
$DL_REQUIRE_DATA=1 (`.ci/run` sets it when ../shared/data exists): then it fails, so missing
data cannot pass silently in CI.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

REQUIRE_ENV = "DL_REQUIRE_DATA"


def find_data_root() -> tuple[Path | None, str]:
    """(data root or None, why there is none) as `dl.data.root.resolve_data_root(None)` sees it."""
    from dl.data.root import resolve_data_root
    from dl.errors import DataError

    try:
        root = resolve_data_root(None)
    except DataError as e:  # $DL_DATA_ROOT points nowhere
        return None, str(e)
    return root, "" if root is not None else "no data root ($DL_DATA_ROOT unset, no ../shared/data)"


def check_data(root: Path | None, why: str, folders, require: bool) -> None:
    """Skips (or, when `require`, fails) unless every folder exists under `root`."""
    if root is None:
        missing = why
    else:
        absent = [f for f in folders if not (root / f).is_dir()]
        missing = f"missing under {root}: {', '.join(absent)}" if absent else ""
    if not missing:
        return
    if require:
        pytest.fail(f"{missing} (${REQUIRE_ENV}=1: data must be present)", pytrace=False)
    pytest.skip(missing)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_data(*folders): folders the test needs under the data root"
    )


def _check_item(item) -> Path | None:
    folders = [f for m in item.iter_markers("needs_data") for f in m.args]
    root, why = find_data_root()
    check_data(root, why, folders, os.environ.get(REQUIRE_ENV, "") == "1")
    return root


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data") is not None:
        _check_item(item)


@pytest.fixture
def data_root(request) -> Path:
    """The data root, after checking the folders of the test's `needs_data` marks."""
    return _check_item(request.node)
