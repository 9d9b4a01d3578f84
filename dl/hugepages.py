"""Large XLA:CPU buffers on transparent huge pages (glibc's `glibc.malloc.hugetlb=1` tunable).

XLA:CPU allocates an execution's big buffers with malloc; glibc serves those with fresh mmaps,
so every jitted chunk and evaluation page-faults and zeroes its temporaries 4 KiB at a time:
~150,000 minor faults (600 MB) per FEMNIST-style FedAvg round of 10 clients, 7 million in a
120-virtual-s gossip run of 200 phones (bench/peers/ours.py; scripts/profile_split.py's
`profile`). With the tunable, glibc asks for transparent huge pages on those mmaps (kernel THP
mode `madvise` suffices): 600-900 faults per FEMNIST round, which then took 0.37-0.41 s instead
of 0.46-0.76 s, and the gossip run 38-40 s instead of 43-47 s (2-core CPU, load 1.4-1.6,
interleaved). Results do not change (memory placement only).

glibc reads tunables at process start, so `reexec()` restarts the process once with the
tunable set; `dl.run` calls it first thing. `DL_HUGEPAGES=0` turns it off. Needs Linux, glibc
>= 2.35 and THP not `never`; otherwise nothing happens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def with_tunable(env: dict[str, str]) -> dict[str, str]:
    """A copy of `env` whose GLIBC_TUNABLES sets `glibc.malloc.hugetlb=1` (other tunables kept;
    an explicit setting of hugetlb is left as it is)."""
    out = dict(env)
    parts = [p for p in out.get("GLIBC_TUNABLES", "").split(":") if p]
    if not any(p.split("=", 1)[0] == TUNABLE for p in parts):
        parts.append(f"{TUNABLE}=1")
    out["GLIBC_TUNABLES"] = ":".join(parts)
    return out


def supported() -> bool:
    """Linux with glibc >= 2.35 (the tunable's first release) and THP not disabled."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = (int(v) for v in version.split(".")[:2])
        mode = THP.read_text()
    except (AttributeError, ValueError, OSError):
        return False
    return name == "glibc" and (major, minor) >= (2, 35) and "[never]" not in mode


def wanted(env: dict[str, str]) -> bool:
    """Whether a process with `env` should restart itself with the tunable."""
    if env.get("DL_HUGEPAGES", "1") == "0":
        return False
    return with_tunable(env) != dict(env) and supported()


EMBEDDED = ("pytest", "IPython", "ipykernel")  # a host process that must not be replaced


def reexec() -> None:
    """Restarts this Python process with the tunable set (same interpreter, same arguments),
    when `wanted`; returns otherwise, and always inside pytest or an interactive session (the
    host would be replaced). Call before any heavy import or allocation."""
    env = dict(os.environ)
    embedded = sys.flags.interactive or any(m in sys.modules for m in EMBEDDED)
    if wanted(env) and not embedded:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], with_tunable(env))
