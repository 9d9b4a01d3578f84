"""Plot test accuracy (and optionally another key) against virtual time for one or more runs.

    python scripts/plot_run.py outputs/<run>/metrics.jsonl [more.jsonl ...] --out acc.png \
        [--labels fedavg gossip] [--y test_accuracy] [--x virtual_time_s] [--hours]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dl.errors import DLError  # noqa: E402
from dl.io.metrics import read_metrics  # noqa: E402


def plot(
    paths: list[Path],
    out: Path,
    labels: list[str] | None,
    x: str,
    y: str,
    hours: bool,
    title: str | None,
) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for i, p in enumerate(paths):
        every = read_metrics(p)
        for key, flag in ((x, "--x"), (y, "--y")):
            if not any(r.get(key) is not None for r in every):
                keys = sorted({k for r in every for k in r if not isinstance(r[k], list | dict)})
                raise DLError(f"{flag} {key}: {p} has no rows with it (keys: {', '.join(keys)})")
        rows = [r for r in every if r.get(y) is not None and r.get(x) is not None]
        if not rows:
            raise DLError(f"{p} has no rows with both '{x}' and '{y}'")
        xs = [r[x] / 3600.0 if hours else r[x] for r in rows]
        label = labels[i] if labels else p.parent.name
        ax.plot(xs, [r[y] for r in rows], label=label, lw=1.5)
    ax.set_xlabel(f"{x} (hours)" if hours else x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    except OSError as e:
        raise DLError(f"cannot write --out {out}: {e.strerror or e}") from None
    except ValueError as e:  # an unknown image format
        raise DLError(f"--out {out}: {str(e).splitlines()[0]}") from None
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("metrics", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("accuracy.png"))
    ap.add_argument("--labels", nargs="*")
    ap.add_argument("--x", default="virtual_time_s")
    ap.add_argument("--y", default="test_accuracy")
    ap.add_argument("--hours", action="store_true")
    ap.add_argument("--title")
    a = ap.parse_args()
    for p in a.metrics:
        if not p.is_file():
            raise SystemExit(f"error: metrics file {p} does not exist")
    if a.labels and len(a.labels) != len(a.metrics):
        raise SystemExit("error: give one --labels entry per metrics file")
    try:
        plot(a.metrics, a.out, a.labels, a.x, a.y, a.hours, a.title)
    except DLError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
