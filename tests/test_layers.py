"""The package's import structure (issue 15): no import cycles among `dl` modules, and no module
imports a higher layer. Layers, low to high: rules and leaf packages, engines, the world
builder, algorithms, the host loop, the entry points. Fails naming the offending import."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dl"

# package (or module) prefix -> layer; the longest matching prefix wins
LAYERS = {
    "dl.errors": 0,
    "dl.rng": 0,
    "dl.arrays": 0,
    "dl.hugepages": 0,
    "dl.rules": 1,
    "dl.data": 1,
    "dl.models": 1,
    "dl.traces": 1,
    "dl.network": 1,
    "dl.devices": 1,
    "dl.io": 1,
    "dl.bench": 1,
    "dl.sharding": 1,
    "dl.train": 1,
    "dl.engine": 2,
    "dl.overlay": 2,
    "dl.config_schema": 3,
    "dl.build": 3,
    "dl.algorithms": 4,
    "dl.loop": 5,
    "dl.multitask": 5,
    "dl.simulate_multi": 6,
    "dl.simulate": 7,
    "dl.resume_config": 7,
    "dl.run": 8,
    "dl.analysis": 8,
}


def layer(mod: str) -> int:
    best = max((p for p in LAYERS if mod == p or mod.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{mod} has no layer in tests/test_layers.py"
    return LAYERS[best]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """{module: the dl modules it imports (top level and inside functions)}."""
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    out = {}
    for mod, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dl"):
                for a in node.names:  # `from dl.x import y`: y may be a module
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in mods else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("dl.")}
        out[mod] = {d for d in deps if d in mods and d != mod and d != "dl"}
    return out


def test_no_module_imports_a_higher_layer():
    bad = [
        f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
        for m, deps in imports().items()
        for d in deps
        if layer(d) > layer(m)
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = imports()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d) :] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_every_algorithm_module_registers_itself_under_its_file_name():
    from dl.algorithms.base import ENGINES, algorithm_names, get_algorithm

    names = algorithm_names()
    assert set(names) == {"fedavg", "fedasync", "fedbuff", "gossip", "dwa"}
    for n in names:
        alg = get_algorithm(n)
        assert alg.name == n and alg.engine in ENGINES
    assert {get_algorithm(n).engine for n in names} == set(ENGINES)


def test_importing_the_entry_points_does_not_start_the_jax_backend():
    # jax.distributed.initialize() (dist.enabled) must come before any backend use; a
    # module-level jnp constant anywhere under dl.simulate's imports would start it
    import subprocess
    import sys

    code = (
        "import dl.run, dl.simulate, dl.simulate_multi, dl.multitask\n"
        "from jax._src import xla_bridge as xb\n"
        "assert not xb._backends, 'importing dl started the JAX backend'\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
