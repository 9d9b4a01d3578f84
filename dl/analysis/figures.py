"""Figure helpers: a metric against virtual time or energy, median and range over seeds."""

from pathlib import Path

import numpy as np


def on_grid(runs, x: str, y: str, grid: np.ndarray) -> np.ndarray:
    """[S, G] step-interpolated `y` of each run's rows at the grid points (nan before the
    first row)."""
    out = np.full((len(runs), grid.size), np.nan)
    for i, rows in enumerate(runs):
        xs = np.array([r.get(x, np.nan) for r in rows], dtype=float)
        ys = np.array([np.nan if r.get(y) is None else r[y] for r in rows], dtype=float)
        idx = np.searchsorted(xs, grid, side="right") - 1
        ok = idx >= 0
        out[i, ok] = ys[idx[ok]]
    return out


def band_plot(ax, curves: dict, x: str, y: str, n: int = 200, log_x: bool = False) -> None:
    """One line (median over seeds) + shaded min-max band per label; curves: label -> [rows]."""
    hi = max((r.get(x, 0.0) or 0.0) for runs in curves.values() for rows in runs for r in rows)
    lo = 1.0 if log_x else 0.0
    grid = np.geomspace(lo, max(hi, lo * 10), n) if log_x else np.linspace(0.0, hi, n)
    for label, runs in curves.items():
        if not runs:
            continue
        v = on_grid(runs, x, y, grid)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med, mn, mx = np.nanmedian(v, 0), np.nanmin(v, 0), np.nanmax(v, 0)
        (line,) = ax.plot(grid, med, label=f"{label} (n={len(runs)})")
        ax.fill_between(grid, mn, mx, color=line.get_color(), alpha=0.2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def save(fig, path: Path) -> None:
    """Writes a figure atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip("."))
    tmp.replace(path)
