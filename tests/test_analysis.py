"""dl.analysis on hand-made run files: reading, time/energy/bytes to target, seed summaries."""

import json
import math

import numpy as np
import pytest

from dl.analysis.runs import RunReadError, read_metrics, read_run
from dl.analysis.stats import summarize
from dl.analysis.targets import reach, value_at

COLS = ("virtual_time_s", "test_accuracy", "energy_j", "bytes_up", "bytes_down")
ROWS = [
    dict(zip(COLS, v))
    for v in [
        (0.0, 0.10, 0.0, 0, 0),
        (60.0, 0.55, 5.0, 10, 20),
        (120.0, 0.81, 9.0, 30, 40),
        (180.0, 0.79, 12.0, 50, 60),
        (240.0, 0.90, 20.0, 70, 80),
    ]
]


def write_rows(path, rows, torn=None):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + (torn or ""))


def test_reach_reads_the_first_row_at_or_above_target(tmp_path):
    # 0.8 is first reached at 120 s (0.81; the later dip to 0.79 does not matter): energy 9 J,
    # bytes 30 + 40 = 70 from that same row.
    r = reach(ROWS, "test_accuracy", 0.8)
    assert (r.reached, r.time_s, r.energy_j, r.bytes, r.horizon_s) == (True, 120.0, 9.0, 70, 240.0)
    # exactly equal counts as reached: 0.55 at 60 s
    assert reach(ROWS, "test_accuracy", 0.55).time_s == 60.0
    # never reached: censored at the horizon, no time invented
    c = reach(ROWS, "test_accuracy", 0.95)
    assert (c.reached, c.time_s, c.horizon_s) == (False, None, 240.0)
    # lower is better (0-1 error 1 - acc): error <= 0.2 first at 120 s (0.19)
    err = [dict(r, err=1 - r["test_accuracy"]) for r in ROWS]
    assert reach(err, "err", 0.2, lower=True).time_s == 120.0


def test_value_at_is_a_step_function():
    assert value_at(ROWS, 59.0, "test_accuracy") == 0.10
    assert value_at(ROWS, 60.0, "test_accuracy") == 0.55
    assert value_at(ROWS, -1.0, "test_accuracy") is None


def test_read_metrics_drops_only_a_torn_last_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    write_rows(p, ROWS[:2], torn='{"virtual_time_s": 12')
    assert len(read_metrics(p)) == 2
    p.write_text(json.dumps(ROWS[0]) + "\n{bad\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(RunReadError, match="metrics.jsonl:2"):
        read_metrics(p)
    with pytest.raises(RunReadError, match="no such"):
        read_metrics(tmp_path / "gone.jsonl")


def test_read_run_reads_config_and_summary(tmp_path):
    write_rows(tmp_path / "metrics.jsonl", ROWS)
    (tmp_path / "config.yaml").write_text("seed: 3\nalgorithm:\n  name: gossip\n")
    (tmp_path / "summary.json").write_text('{"status": "done"}')
    run = read_run(tmp_path)
    assert run.config["seed"] == 3 and run.summary["status"] == "done"
    assert run.column("virtual_time_s")[-1] == 240.0


def test_summarize_median_and_censoring():
    # 5 seeds, values 10, 20, 30, 40, 50: median 30; the interval holds the median and lies
    # within [min, max] (a percentile bootstrap of the median never leaves the data's range)
    s = summarize([50, 10, 40, 20, 30])
    assert s.median == 30 and s.censored == 0
    assert 10 <= s.lo <= 30 <= s.hi <= 50
    # 2 of 5 censored (inf): median = 3rd smallest = 30, still finite; upper bound inf because
    # a resample with >= 3 censored seeds has an infinite median
    s = summarize([10, None, 30, None, 20])
    assert s.median == 30 and s.censored == 2 and math.isinf(s.hi)
    # 3 of 5 censored: the median itself is censored
    assert math.isinf(summarize([None, None, None, 1, 2]).median)
    # even count: mean of the two middle values; [1, 2, 3, 4] -> 2.5
    assert summarize([4, 1, 3, 2]).median == 2.5


def test_summarize_interval_covers_and_overlap_rule():
    rng = np.random.default_rng(1)
    a = summarize(rng.normal(100, 1, 9))
    b = summarize(rng.normal(200, 1, 9))
    c = summarize(rng.normal(100.2, 1, 9))
    assert not a.overlaps(b) and a.overlaps(c)
    assert a.lo <= a.median <= a.hi


def test_replace_block_only_touches_the_marked_block(tmp_path):
    from dl.analysis.readme import replace_block

    p = tmp_path / "README.md"
    p.write_text("a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n")
    assert replace_block(p, "t", "new 1\nnew 2\n")
    assert p.read_text() == "a\n<!-- t:begin -->\nnew 1\nnew 2\n<!-- t:end -->\nb\n"
    assert not replace_block(p, "other", "x")


def test_publish_writes_json_and_the_readme_block(tmp_path, monkeypatch, capsys):
    from dl.analysis import readme as rd

    fake = tmp_path / "README.md"
    fake.write_text("a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n")
    monkeypatch.setattr(rd, "README", fake)
    rd.publish({"x": 1}, tmp_path / "out" / "r.json", "| new |", "t")
    assert json.loads((tmp_path / "out" / "r.json").read_text()) == {"x": 1}
    assert fake.read_text() == "a\n<!-- t:begin -->\n| new |\n<!-- t:end -->\nb\n"
    assert "| new |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs one <!-- u:begin -->"):
        rd.publish({"x": 2}, tmp_path / "r2.json", "text", "u")
    rd.publish({"x": 3}, tmp_path / "r3.json", "text")  # no block: README untouched
    assert "| new |" in fake.read_text()
