"""dl.hugepages: the glibc tunable is merged into GLIBC_TUNABLES, and a process restarts itself
once with it (never again, never when DL_HUGEPAGES=0)."""

import os
import subprocess
import sys

import pytest

from dl import hugepages

CHILD = (
    "import os; from dl import hugepages; "
    "print('start', flush=True); hugepages.reexec(); print(os.environ.get('GLIBC_TUNABLES'))"
)


def test_with_tunable_merges_and_keeps_other_tunables():
    assert hugepages.with_tunable({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"}
    out = hugepages.with_tunable(env)
    assert out == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "X": "1"}
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"  # input not mutated
    # a user's own hugetlb choice (0 or 2) is left alone
    mine = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert hugepages.with_tunable(mine) == mine
    assert not hugepages.wanted(mine)
    assert not hugepages.wanted({"DL_HUGEPAGES": "0"})


def run_child(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "DL_HUGEPAGES")}
    r = subprocess.run(
        [sys.executable, "-c", CHILD], env=base | env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.mark.skipif(not hugepages.supported(), reason="needs Linux, glibc >= 2.35 and THP")
def test_reexec_restarts_once_with_the_tunable():
    # the child prints 'start' before reexec: twice = it restarted exactly once
    assert run_child() == ["start", "start", "glibc.malloc.hugetlb=1"]
    assert run_child(DL_HUGEPAGES="0") == ["start", "None"]
    kept = "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert run_child(GLIBC_TUNABLES=kept) == ["start", kept]
