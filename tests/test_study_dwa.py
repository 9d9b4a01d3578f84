"""scripts/study_dwa.py's aggregation on hand-made run rows: the server's return, time to the
target with censoring, and the paired DWA - FedAsync difference at the return."""

import math
from pathlib import Path

import pytest
from scripts_loader import load_script

REPO = Path(__file__).resolve().parent.parent
study = load_script("study_dwa")


def rows(points, p90=None):
    """[(t, acc)] -> metric rows; cumulative energy_j = t (1 J per virtual s)."""
    out = []
    for t, a in points:
        r = {"virtual_time_s": float(t), "test_accuracy": a, "energy_j": float(t)}
        if p90 is not None:
            r["node_accuracy_p90"] = p90
        out.append(r)
    return out


def test_return_effect_by_hand():
    # frozen at 0.80 before the return at 1000; 0.84 at it, down to 0.83, up to 0.86; the row
    # at 3000 is outside the 1200-s window and must not count
    pts = [(0, 0.1), (900, 0.80), (1000, 0.84), (1060, 0.83), (1120, 0.86), (1180, 0.85)]
    r = rows(pts + [(3000, 0.99)], 0.82)
    e = study.return_effect(r, 1000.0, window_s=1200.0)
    assert e["pre"] == 0.80 and e["first"] == 0.84 and e["frontier_p90"] == 0.82
    assert e["low"] == 0.83 and e["high"] == 0.86 and e["end"] == 0.85
    assert e["dip"] == pytest.approx(0.80 - 0.83)  # negative: not pulled below `pre`
    # falls after a peak: 0.84 -> 0.83 (0.01), 0.86 -> 0.85 (0.01); never 0.86 -> 0.83
    assert e["drawdown"] == pytest.approx(0.01)
    r[3]["test_accuracy"] = 0.79  # 0.84 -> 0.79: a 0.05 fall, and 0.01 below `pre`
    e = study.return_effect(r, 1000.0, window_s=1200.0)
    assert e["drawdown"] == pytest.approx(0.05) and e["dip"] == pytest.approx(0.01)
    assert study.return_effect(r, 5000.0) == {}  # no evaluation after the return


def test_aggregate_censoring_and_paired_difference():
    t_ret = study.START_S + 0.5 * 3600  # 2700 s: the 0.5-h outage's return
    dwa, fa = study.cell_name("dwa", 0.5), study.cell_name("fedasync", 0.5)
    runs = {
        # DWA reaches 0.85 at 3000, 3600, never (censored) -> median 3600 (2nd of 3 sorted)
        dwa: [
            rows([(0, 0.1), (2640, 0.82), (2700, 0.84), (3000, 0.85)]),
            rows([(0, 0.1), (2640, 0.82), (2700, 0.83), (3600, 0.86)]),
            rows([(0, 0.1), (2640, 0.82), (2700, 0.82), (3600, 0.84)]),
        ],
        # FedAsync: server frozen at the return (first = 0.82 for every seed)
        fa: [
            rows([(0, 0.1), (2640, 0.82), (2700, 0.82), (4000, 0.85)]),
            rows([(0, 0.1), (2640, 0.82), (2700, 0.82), (4200, 0.85)]),
            rows([(0, 0.1), (2640, 0.82), (2700, 0.82), (4400, 0.85)]),
        ],
    }
    res = study.aggregate(runs, seeds=3)
    c = res["cells"][dwa]
    assert c["n"] == 3 and c["time_s"]["censored"] == 1
    assert c["time_s"]["median"] == 3600.0 and math.isinf(c["time_s"]["hi"])
    assert c["energy_j"]["median"] == 3600.0  # energy_j = t at the reaching row
    assert c["final"]["median"] == 0.85  # finals 0.85, 0.86, 0.84
    assert res["cells"][fa]["time_s"]["median"] == 4200.0
    assert c["ret_pre"]["median"] == 0.82 and c["ret_first"]["median"] == 0.83
    # paired DWA - FedAsync at the return: 0.02, 0.01, 0.00 -> median 0.01
    d = res["paired"]["0.5h_iid"]["ret_first"]
    assert d["median"] == pytest.approx(0.01) and d["lo"] <= d["median"] <= d["hi"]
    assert t_ret == 2700.0
    # paired time: DWA censored in seed 2 -> no paired time difference; energy likewise
    assert res["paired"]["0.5h_iid"]["time_s"] is None
    # cells without runs are left out, and the tables still render (with '-')
    assert study.cell_name("dwa", 4.0) not in res["cells"]
    text = study.tables(res)
    assert "| 0.5 h | dwa | 60 min [" in text and "(1/3 cens.)" in text
    assert "| 4 h | dwa | - |" in text and "| 0.5h, iid | 0.010 [" in text


def test_grid_shares_the_default_cell():
    g = study.grid()
    # 4 outage lengths x 2 algorithms + 4 knob variants + 2 Dirichlet cells
    assert len(g) == 14
    assert study.cell_name("dwa", 2.0, lam=1.0, nu=1.0) == study.cell_name("dwa", 2.0)
    ov = study.overrides(g[study.cell_name("dwa", 2.0, lam=0.8)], 3)
    assert "server.outages=[[900,8100]]" in ov and "algorithm.lam_max=0.8" in ov
    assert ov[-1] == "seed=3"
