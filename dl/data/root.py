"""Where the data files live: resolve the data root and name missing files with a fix.

Layout under the root (identical to ``shared/data`` and to what ``scripts/fetch_data.py`` writes)::

    <root>/fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <root>/tiny_shakespeare/input.txt
    <root>/spambase/spambase.data
    <root>/pendigits/pendigits.{tra,tes}
    <root>/stunner_smartphone_availability/..., <root>/flash_device_profiles/..., ...

The first path component is also the name ``scripts/fetch_data.py`` accepts, so error messages can
say exactly which command fetches a missing file.
"""

from __future__ import annotations

import os
from pathlib import Path

from dl.errors import DataError

ENV_VAR = "DL_DATA_ROOT"
FETCH_SCRIPT = "scripts/fetch_data.py"


def repo_root() -> Path:
    """The checkout that holds the ``dl`` package (the parent of the package directory)."""
    return Path(__file__).resolve().parent.parent.parent


def default_data_root() -> Path:
    """``<repo root>/../shared/data``: where the offline copies sit beside the checkout."""
    return repo_root().parent / "shared" / "data"


def resolve_data_root(root: str | os.PathLike[str] | None) -> Path | None:
    """The data root to read from, or None when there is none (only embedded datasets work then).

    Order: the explicit ``root`` (``~`` expanded; it must exist), else ``$DL_DATA_ROOT`` (it must
    exist too), else ``<repo root>/../shared/data`` if it exists, else None.
    """
    if root is not None and str(root) != "":
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data root {path} does not exist; create it with "
                f"`python {FETCH_SCRIPT} --root {path}` or set data.root=<dir>"
            )
        return path.resolve()
    env = os.environ.get(ENV_VAR, "")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data root {path} (from ${ENV_VAR}) does not exist; create it with "
                f"`python {FETCH_SCRIPT} --root {path}` or unset ${ENV_VAR}"
            )
        return path.resolve()
    default = default_data_root()
    return default.resolve() if default.is_dir() else None


def fetch_hint(name: str, root: Path | None) -> str:
    """The one-line fix for a missing file of dataset folder ``name``."""
    where = str(root) if root is not None else "<dir>"
    return f"run `python {FETCH_SCRIPT} {name} --root {where}` or set data.root=<dir>"


def require_file(root: Path | None, *parts: str) -> Path:
    """``root / parts...`` if that file exists, else a DataError naming it and how to fetch it.

    ``parts[0]`` is the dataset folder (``fashion_mnist``, ``tiny_shakespeare``, ...), which is also
    the name to pass to ``scripts/fetch_data.py``.
    """
    if not parts:
        raise ValueError("require_file needs at least one path component")
    rel = Path(*parts)
    if root is None:
        raise DataError(
            f"no data root for {rel}: none given, ${ENV_VAR} unset and "
            f"{default_data_root()} absent; {fetch_hint(parts[0], None)}"
        )
    path = Path(root) / rel
    if not path.is_file():
        raise DataError(f"missing data file {path}; {fetch_hint(parts[0], Path(root))}")
    return path


def load_npz(path: Path, keys: tuple[str, ...], what: str) -> dict:
    """The arrays `keys` of the npz archive `path` (no pickle), read in full so a damaged member
    fails here. Any defect is a DataError naming `what`, the file and the defect: not a zip
    archive, a corrupt member (CRC/truncation), a missing array, pickled objects."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"corrupt {what} {path}: not an npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"corrupt {what} {path}: lacks array(s) {', '.join(missing)}")
            return {k: np.asarray(z[k]) for k in keys}
    except DataError:
        raise
    except ValueError as e:
        why = "holds pickled objects" if "pickle" in str(e) else str(e).splitlines()[0]
        raise DataError(f"corrupt {what} {path}: {why}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"corrupt {what} {path}: damaged archive ({why})") from None
