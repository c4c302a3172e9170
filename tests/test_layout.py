"""The runtime's rooms and their one-way doors (docs/CONTRACTS.md, "Layout").

Every import in runtime/ (module level and inside functions) is read from the source, and each must
point from a room to itself or to a room below it:

    base (runtime/__init__, errors, cache) < model < backends (incl. gpu/) < image < video < cli

with two exceptions stated here: the package's ``__init__`` re-exports ``Colorizer`` from image (the
public API, lazily), and nothing in runtime imports the trainer or the plug-in. The colour modules
import no backend, and there are no import circles between modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
ORDER = ["base", "model", "backends", "image", "video", "cli"]
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else "base"


def imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from X import y`` counts y when X.y is a module)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            for a in node.names:
                sub = f"{target}.{a.name}"
                if (ROOT / sub.replace(".", "/")).with_suffix(".py").is_file() or (ROOT / sub.replace(".", "/")).is_dir():
                    found.add(sub)
    return {m for m in found if m == "runtime" or m.startswith(("runtime.", "trainer", "plugin"))}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in RUNTIME.rglob("*.py")}


def test_imports_point_one_way_between_rooms():
    wrong = []
    for mod, targets in graph().items():
        for t in targets:
            if t.startswith(("trainer", "plugin")):
                wrong.append(f"{mod} -> {t} (runtime never imports the trainer or the plug-in)")
            elif mod == "runtime" and t in ("runtime.image", "runtime.image.colorizer"):
                continue  # the public API's lazy re-export of Colorizer
            elif ORDER.index(room(t)) > ORDER.index(room(mod)):
                wrong.append(f"{mod} ({room(mod)}) -> {t} ({room(t)})")
    assert not wrong, "imports against the room order:\n" + "\n".join(sorted(wrong))


def test_colour_and_model_modules_import_no_gpu_video_or_cli_code():
    g = graph()
    for mod in ("runtime.image.color", "runtime.image.fastcolor"):
        assert all(room(t) in ("base",) or t.startswith("runtime.image.color") for t in g[mod]), (mod, g[mod])
    for mod in [m for m in g if room(m) == "model"]:
        assert all(room(t) in ("base", "model") for t in g[mod]), (mod, g[mod])


def test_no_import_circles():
    g = graph()
    modules = {m: {t for t in ts if t in g and t != m and not m.startswith(t + ".")} for m, ts in g.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in modules[m]:
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_every_room_says_what_it_holds_and_may_import():
    for pkg in [p for p in RUNTIME.rglob("__init__.py") if p.parent != RUNTIME]:
        doc = ast.get_docstring(ast.parse(pkg.read_text())) or ""
        assert len(doc) > 80 and "import" in doc, f"{pkg.relative_to(ROOT)} needs a docstring: what it holds, what it may import"


def test_source_files_stay_readable_in_one_sitting():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for d in ("runtime", "trainer", "plugin", "tools")
            for p in (ROOT / d).rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, "files over ~400 lines:\n" + "\n".join(long)
