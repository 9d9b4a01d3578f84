"""scripts/bench_quantum.py's README block and marker rewrite (its timings are not tested)."""

import pytest
from scripts_loader import load_script


@pytest.fixture(scope="module")
def bq():
    return load_script("bench_quantum")


RES = {
    "ref": "abc",
    "this": "def",
    "rows": [
        {
            "case": "gossip_1k",
            "median_wall_per_virtual_s": {"ref": 0.5, "this": 0.2},
            "ratio_ref_over_this": 2.5,
            "first_chunk_s": {"ref": [9.0, 8.0], "this": [6.0, 5.5]},
        }
    ],
    "week_fedasync_system_10k": {"wall_s": 69.4, "load1_before": 1.5},
}


def test_table_quotes_medians_ratio_and_fastest_first_chunk(bq):
    text = bq.table(RES)
    # 0.5 / 0.2 = 2.5x; first chunk: the smaller of each tree's runs, 8.0 / 5.5
    assert "| gossip_1k | 0.5 | 0.2 | 2.5x | 8.0 / 5.5 |" in text
    assert "69 s wall" in text


def test_write_block_replaces_only_between_markers(bq, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{bq.BEGIN}\nold\n{bq.END}\ntail\n")
    bq.write_block(readme, "new")
    assert readme.read_text() == f"head\n{bq.BEGIN}\nnew\n{bq.END}\ntail\n"
    readme.write_text("no markers")
    with pytest.raises(SystemExit):
        bq.write_block(readme, "new")
