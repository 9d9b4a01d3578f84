"""The evaluation suite's grid (issue 13): which cells a scale has and which runs they need.

A scale (`conf/suite/<scale>.yaml`) lists tasks, algorithms and server scenarios. A cell is
(task, server, algorithm). Two rules keep the grid honest and cheap:
- FL (fedavg, fedasync, fedbuff) cannot run with `server=never`: the cell is `n/a`; the
  synchronous FedAvg engine runs only with `server=always` (it has no outage semantics), so
  its other cells are `n/a` too.
- Gossip learning never uses the server, so it runs once per task and every server scenario
  reads that run; DWA with the server never up *is* gossip learning (a bit-exact test,
  tests/test_gossip_dwa.py), so that cell reads the gossip run too (`alias`).
"""

from dataclasses import dataclass

FL = ("fedavg", "fedasync", "fedbuff")
KEYS = ("scale", "seeds", "metric", "base", "tasks", "algorithms", "servers")


class SuiteError(ValueError):
    """A malformed suite file; the message names the key."""


@dataclass(frozen=True)
class Cell:
    task: str
    server: str
    algorithm: str
    run_key: str | None  # folder of the runs this cell reads (None: n/a)
    note: str = ""  # why the cell is n/a or an alias


def check_scale(spec: dict, name: str) -> dict:
    """Validates a loaded scale file; returns it with defaults."""
    if not isinstance(spec, dict):
        raise SuiteError(f"{name}: not a mapping")
    missing = [k for k in KEYS if k not in spec]
    if missing:
        raise SuiteError(f"{name}: missing key(s) {', '.join(missing)}")
    if not isinstance(spec["seeds"], int) or spec["seeds"] < 1:
        raise SuiteError(f"{name}: seeds must be an integer >= 1, got {spec['seeds']!r}")
    for t, v in spec["tasks"].items():
        if not isinstance(v, dict) or "target" not in v or "overrides" not in v:
            raise SuiteError(f"{name}: tasks.{t} needs `overrides` and `target`")
    unknown = set(spec["algorithms"]) - set(FL) - {"gossip", "dwa"}
    if unknown:
        raise SuiteError(f"{name}: unknown algorithm(s) {', '.join(sorted(unknown))}")
    return dict(spec, jobs=int(spec.get("jobs", 1)))


def cells(spec: dict, only: dict | None = None) -> list:
    """Every (task, server, algorithm) cell, with the run folder it reads; `only` maps
    "tasks"/"servers"/"algorithms" to the names to keep (None: all)."""
    only = only or {}

    def keep(kind, names):
        return [x for x in names if not only.get(kind) or x in only[kind]]

    out = []
    for task in keep("tasks", spec["tasks"]):
        for server in keep("servers", spec["servers"]):
            never = server == "never"
            for alg in keep("algorithms", spec["algorithms"]):
                if alg in FL and never:
                    out.append(Cell(task, server, alg, None, "FL cannot run without a server"))
                elif alg == "fedavg" and server != "always":
                    out.append(Cell(task, server, alg, None, "sync FedAvg: server=always only"))
                elif alg == "gossip":
                    out.append(Cell(task, server, alg, f"{task}/gossip", "server not used"))
                elif alg == "dwa" and never and "gossip" in spec["algorithms"]:
                    out.append(Cell(task, server, alg, f"{task}/gossip", "= gossip (never up)"))
                else:
                    out.append(Cell(task, server, alg, f"{task}/{server}/{alg}"))
    return out


def run_overrides(spec: dict, run_key: str) -> list:
    """Hydra overrides of one run folder key `task/server/alg` or `task/gossip`."""
    parts = run_key.split("/")
    task, alg = parts[0], parts[-1]
    ov = list(spec["base"]) + list(spec["tasks"][task]["overrides"])
    if len(parts) == 3:
        ov += list(spec["servers"][parts[1]])
    else:
        ov += ["server=never"]
    return ov + list(spec["algorithms"][alg])
