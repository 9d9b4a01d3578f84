"""scripts/gpu_check.py: its result check, and its CPU path end to end under a short budget
(the GPU path itself needs a GPU; README says how to run it)."""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402


def good() -> dict:
    stages = {n: {"status": "ok", "value": 1.5} for n in gpu_check.STAGES}
    stages["install"] = {"status": "skipped", "reason": "no GPU"}
    return {"stages": stages}


def test_check_result_accepts_numbers_and_reasons():
    assert gpu_check.check_result(good()) == []


@pytest.mark.parametrize(
    "stage, record, word",
    [
        ("femnist", None, "missing"),
        ("tests", {"status": "ok", "value": math.nan}, "finite"),
        ("tests", {"status": "ok", "value": "12"}, "finite"),
        ("tests", {"status": "ok"}, "finite"),
        ("stunner", {"status": "skipped", "reason": "  "}, "reason"),
        ("population", {"status": "failed"}, "reason"),
        ("strategy", {"status": "done", "value": 1}, "status"),
    ],
)
def test_check_result_names_each_defect(stage, record, word):
    r = good()
    if record is None:
        del r["stages"][stage]
    else:
        r["stages"][stage] = record
    problems = gpu_check.check_result(r)
    assert len(problems) == 1 and problems[0].startswith(stage) and word in problems[0]


def test_cpu_path_writes_every_stage_within_its_budget(tmp_path):
    """The real CPU path with a 45-s budget and stage caps x3 (so the first stage, the golden
    server tests, finishes even on a loaded 2-core machine): every stage is in the JSON with a
    number or a reason (later stages are expected to run out of budget and must say so), the
    golden tests pass, and the wall-time cap holds (plus process start-up slack)."""
    out, budget = tmp_path / "gc.json", 45
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts/gpu_check.sh"),
            str(out),
            "--cpu-smoke",
            "--budget-s",
            str(budget),
            "--cap-scale",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=budget + 60,
    )
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "cpu-smoke" and res["backend"] == "cpu"
    assert gpu_check.check_result(res) == [] and res["problems"] == []
    assert set(res["stages"]) == set(gpu_check.STAGES)
    assert res["stages"]["install"]["status"] == "skipped"
    tests = res["stages"]["tests"]
    assert tests["status"] == "ok" and tests["value"] >= 1 and tests["failed"] == 0
    assert "skipped" in tests["real_devices"]  # one CPU device: nothing to compare
    assert wall < budget + 20
