"""scripts/bench_peers.py's JSON -> ratios -> README table path (the peers themselves are not
run in CI: they need their own virtual environments)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import bench_peers  # noqa: E402


def runs():
    # ours 1 s, 2 s, then a failed run; the peer 5 s, 8 s, 9 s. Paired ratios: 5/1 = 5 and
    # 8/2 = 4 (the third repeat has no partner), so median 4.5, range 4-5.
    ours = [{"median_round_s": 1.0}, {"median_round_s": 2.0}, {"error": "boom"}]
    peer = [{"median_round_s": t} for t in (5.0, 8.0, 9.0)]
    broken = [{"error": "ImportError: x"}] * 3
    for r in ours + peer + broken:
        r["loadavg"] = [3.0, 2.0, 1.0]
    return {"ours": ours, "fedjax": peer, "gossipy": broken}


def test_ratios_pair_repeats_in_order():
    r = bench_peers.ratios(runs())
    assert r["fedjax"] == {"median": 4.5, "min": 4.0, "max": 5.0, "n": 2}
    assert r["gossipy"] == {"error": "ImportError: x"}


def test_table_rows_and_errors():
    rs = runs()
    result = {
        "repeats": 3,
        "peers": {"fedjax": {}, "gossipy": {}, "flower": {"error": "ERROR: no wheel"}},
        "groups": [
            {"model": "logreg", "nodes": 1000, "runs": rs, "ratios": bench_peers.ratios(rs)}
        ],
    }
    lines = bench_peers.table(result).splitlines()
    assert lines[0] == "| ours over peer | logreg N = 1,000 |"
    assert lines[2] == "| our round (median) | 1.5 s |"  # median of 1 s and 2 s
    assert lines[3] == "| fedjax | 4.5x (4.0-5.0) |"
    assert lines[4] == "| gossipy | failed |"
    assert lines[5].startswith("| flower | not installed: `ERROR: no wheel` |")
    assert "logreg N=1000 ours repeat 3: boom" in lines[-1]
    assert "logreg N=1000 gossipy repeat 1: ImportError: x" in lines[-1]
