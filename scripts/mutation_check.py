"""Mutation check: does every named rule have a fast test that fails when the rule changes?

Each mutation in `scripts/mutations.py` replaces one exact snippet of rule code (found exactly
once, else the script stops with one line naming the mutation). The tree is copied once into
a temporary folder (tracked + untracked, not ignored files); for each mutation the snippet is
changed there, the mutation's fast tests run (`pytest -x -m "not slow"`), and the file is
restored. A mutation is *killed* when pytest reports a failing test (exit 1) and *survives*
when the tests pass; any other exit (collection error, timeout) is reported as an error, never
as a kill. A baseline run without mutations must pass first, or nothing is concluded.

    python scripts/mutation_check.py                 # all mutations, JSON to results/
    python scripts/mutation_check.py --only dwa_lam_zero fedbuff_k_ignored
    python scripts/mutation_check.py --list

Not part of CI (minutes per mutation on a 2-core CPU); the README quotes its last result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mutations import MUTATIONS  # the sibling module: scripts/ is sys.path[0] when run

REPO = Path(__file__).resolve().parent.parent


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def copy_tree(dst: Path) -> None:
    """Copies the files git knows about (tracked or untracked, not ignored) into dst."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, out.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def run_tests(tree: Path, tests: list[str], timeout_s: float) -> tuple[int, float, str]:
    """Runs the fast tests in the copy; returns (exit code, seconds, last lines)."""
    env = dict(os.environ, PYTHONPATH=str(tree), DL_DATA_ROOT=os.environ.get("DL_DATA_ROOT", ""))
    if not env["DL_DATA_ROOT"]:
        env.pop("DL_DATA_ROOT")
        shared = REPO.parent / "shared" / "data"
        if shared.is_dir():
            env["DL_DATA_ROOT"] = str(shared)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    cmd += ["-m", "not slow", *tests]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return 124, time.perf_counter() - t, "timeout"
    tail = (p.stdout.decode() + p.stderr.decode()).strip().splitlines()[-3:]
    return p.returncode, time.perf_counter() - t, " | ".join(tail)


def check_import(tree: Path) -> None:
    """The copy, not the editable install, must be what `import dl` finds there."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    got = subprocess.run(
        [sys.executable, "-c", "import dl; print(dl.__file__)"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not got.startswith(str(tree)):
        _fail(f"`import dl` in the copy resolves to {got!r}, not the copy {tree}")


def apply(tree: Path, m: dict) -> str:
    """Applies mutation m in the copy; returns the original text to restore."""
    path = tree / m["file"]
    if not path.is_file():
        _fail(f"mutation {m['name']}: no file {m['file']}")
    text = path.read_text()
    n = text.count(m["old"])
    if n != m.get("count", 1):
        _fail(f"mutation {m['name']}: snippet found {n} times in {m['file']} (expected 1)")
    path.write_text(text.replace(m["old"], m["new"]))
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="names of the mutations to run")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per test run")
    ap.add_argument("--out", default=str(REPO / "results" / "mutation_check.json"))
    ap.add_argument(
        "--readme", action="store_true", help="write the table into README.md's marked block"
    )
    args = ap.parse_args()
    muts = MUTATIONS
    if args.only:
        unknown = set(args.only) - {m["name"] for m in MUTATIONS}
        if unknown:
            _fail(f"unknown mutation(s): {', '.join(sorted(unknown))} (see --list)")
        muts = [m for m in MUTATIONS if m["name"] in args.only]
    if args.list:
        for m in muts:
            print(f"{m['name']:32s} {m['file']}: {m['why']}")
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="dl-mutation-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        check_import(tree)
        for m in muts:  # every snippet must be present before anything runs
            (tree / m["file"]).write_text(apply(tree, m))
        tests = sorted({t for m in muts for t in m["tests"]})
        rc, sec, tail = run_tests(tree, tests, args.timeout * 2)
        print(f"baseline ({len(tests)} test files): exit {rc} in {sec:.0f} s")
        if rc != 0:
            _fail(f"the unmutated tests do not pass (exit {rc}): {tail}")
        for m in muts:
            orig = apply(tree, m)
            try:
                rc, sec, tail = run_tests(tree, m["tests"], args.timeout)
            finally:
                (tree / m["file"]).write_text(orig)
            status = {0: "SURVIVED", 1: "killed"}.get(rc, f"error (exit {rc})")
            failed = [w for w in tail.split() if "::" in w]
            rows.append(
                dict(
                    name=m["name"],
                    file=m["file"],
                    status=status,
                    seconds=round(sec),
                    caught_by=failed[:3],
                    tail=tail,
                    why=m["why"],
                )
            )
            print(f"{m['name']:32s} {status:18s} {sec:5.0f} s  {' '.join(failed[:2])}", flush=True)
    if args.only and Path(args.out).exists():  # the other mutations keep their last result
        ran = {r["name"]: r for r in rows}
        old = {r["name"]: r for r in json.loads(Path(args.out).read_text())["rows"]}
        rows = [ran.get(m["name"], old.get(m["name"])) for m in MUTATIONS]
        rows = [r for r in rows if r is not None]
    killed = sum(r["status"] == "killed" for r in rows)
    print(
        f"killed {killed} of {len(rows)}; survived: "
        f"{[r['name'] for r in rows if r['status'] == 'SURVIVED']}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(dict(killed=killed, total=len(rows), rows=rows), indent=1))
    tmp_out.replace(out)
    if args.readme:
        from dl.analysis.readme import replace_block

        if not replace_block(REPO / "README.md", "mutation-check", markdown(rows)):
            _fail("README.md has no <!-- mutation-check:begin --> ... end block")
    sys.exit(0 if killed == len(rows) else 1)


def markdown(rows: list) -> str:
    """The README table: each mutation, its status and the first test that caught it."""
    killed = sum(r["status"] == "killed" for r in rows)
    out = [
        f"{killed} of {len(rows)} named mutations killed "
        f"(`python scripts/mutation_check.py`, {time.strftime('%Y-%m-%d')}).",
        "",
        "| mutation | what it breaks | status | caught by |",
        "|---|---|---|---|",
    ]
    for r in rows:
        by = r["caught_by"][0].split("::")[-1] if r["caught_by"] else ""
        out.append(f"| `{r['name']}` | {r['why']} | {r['status']} | {by} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
