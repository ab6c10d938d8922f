"""The shape of the code: tasks/ in stage packages that import only downward, no import cycles
in flows/ and tasks/, nothing done at import."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flows", "tasks")


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module in flows/ and tasks/, subpackages included."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(path: Path, package: str, known: set[str]) -> set[str]:
    """Project modules a file imports anywhere: at top level, in functions, under TYPE_CHECKING.

    ``package`` is the file's own package, against which relative imports resolve.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]).strip(".")
            # "from tasks.data import lake" imports tasks.data.lake; "from tasks.data.lake
            # import X" tasks.data.lake.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        graph[name] = imported_modules(path, package, known) - {name}
    return graph


def stage(module: str) -> str:
    """The part of the code a module belongs to: ``flows``, ``tasks`` (its top file) or the
    package of tasks/ that holds it (``core``, ``data``, ...)."""
    parts = module.split(".")
    return parts[0] if parts[0] == "flows" or len(parts) == 1 else parts[1]


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> the other packages its modules import."""
    packages: dict[str, set[str]] = {}
    for module, imports in graph.items():
        packages.setdefault(stage(module), set()).update(stage(m) for m in imports)
    return {package: imports - {package} for package, imports in packages.items()}


def tasks_packages() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "tasks").glob("*/__init__.py"))


def declared_imports(package: str) -> set[str]:
    """The packages a package's docstring allows it to import (its "May import:" line)."""
    doc = ast.get_docstring(ast.parse((ROOT / "tasks" / package / "__init__.py").read_text()))
    match = re.search(r"^May import: (.+)\.$", doc or "", re.MULTILINE)
    assert match, f"tasks/{package}/__init__.py: no 'May import: ...' line in its docstring"
    return set() if match.group(1) == "none" else set(match.group(1).split(", "))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import tasks.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from tasks.a import x\n    return x\n")
    known = {"tasks.a", "tasks.b"}
    graph = {f"tasks.{n}": imported_modules(tmp_path / f"{n}.py", "tasks", known) for n in "ab"}
    assert graph == {"tasks.a": {"tasks.b"}, "tasks.b": {"tasks.a"}}
    assert find_cycle(graph) == ["tasks.a", "tasks.b", "tasks.a"]
    assert find_cycle({"tasks.a": {"tasks.b"}, "tasks.b": set()}) is None


def test_flows_and_tasks_have_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50
    assert graph["tasks.data.lake"] >= {"tasks.data.ingest", "tasks.core.hashing"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_relative_imports_resolve_against_the_importing_package(tmp_path):
    (tmp_path / "m.py").write_text("from . import lake\nfrom ..core.paths import confined\n")
    known = {"tasks.data.lake", "tasks.core.paths"}
    assert imported_modules(tmp_path / "m.py", "tasks.data", known) == {
        "tasks.data.lake", "tasks.core.paths"}


def test_tasks_is_packages_each_saying_what_it_holds_and_may_import():
    assert (ROOT / "tasks" / "__init__.py").exists()
    assert [p.name for p in (ROOT / "tasks").glob("*.py")] == ["__init__.py"], \
        "modules belong in a package of tasks/, not at its top"
    packages = tasks_packages()
    assert {"core", "data", "features", "forecaster", "distribution", "evaluation", "reporting",
            "registry", "serving", "housekeeping"} <= set(packages)
    for package in packages:
        doc = ast.get_docstring(ast.parse((ROOT / "tasks" / package / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 2, f"tasks/{package}: a two-line docstring"
        assert declared_imports(package) <= set(packages), f"tasks/{package}: unknown package"


def test_core_imports_no_other_package_of_tasks():
    stages = stage_graph(import_graph())
    assert declared_imports("core") == set()
    assert stages["core"] == set(), f"tasks/core imports {sorted(stages['core'])}"


def test_no_package_of_tasks_imports_flows():
    graph = import_graph()
    upward = sorted(f"{module} -> {imported}" for module, imports in graph.items()
                    if module.startswith("tasks") for imported in imports
                    if imported.startswith("flows"))
    assert upward == []


def test_each_package_imports_only_the_packages_its_docstring_names():
    stages = stage_graph(import_graph())
    for package in tasks_packages():
        undeclared = stages.get(package, set()) - declared_imports(package)
        assert not undeclared, f"tasks/{package} imports {sorted(undeclared)}, not declared"


def test_the_package_graph_has_no_cycle():
    stages = stage_graph(import_graph())
    packages = {p: imports for p, imports in stages.items() if p in tasks_packages()}
    assert len(packages) >= 9 and packages["serving"] >= {"registry", "data"}
    cycle = find_cycle({p: imports & set(packages) for p, imports in packages.items()})
    assert cycle is None, "package cycle: " + " -> ".join(cycle or [])


def test_the_package_checks_see_an_upward_import(tmp_path):
    graph = {"tasks.core.paths": {"tasks.data.lake"}, "tasks.data.lake": {"tasks.core.paths"},
             "tasks.data": set(), "flows.cli": {"tasks.data.lake"}}
    stages = stage_graph(graph)
    assert stages == {"core": {"data"}, "data": {"core"}, "flows": {"data"}}
    assert find_cycle(stages) == ["core", "data", "core"]


IMPORT_ALL = """
import importlib, json, os, sys
sys.path.insert(0, sys.argv[1])
before = dict(os.environ)
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
after = dict(os.environ)
print(json.dumps({k: [before.get(k), after.get(k)] for k in before.keys() | after.keys()
                  if before.get(k) != after.get(k)}))
"""


def test_importing_any_module_leaves_the_environment_as_it_was():
    env = {k: v for k, v in os.environ.items()
           if k not in ("GX_ANALYTICS_ENABLED", "TF_CPP_MIN_LOG_LEVEL")}
    names = sorted(project_modules())
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, str(ROOT), json.dumps(names)],
                          env=env, capture_output=True, text=True, timeout=300, check=True)
    changed = json.loads(done.stdout.strip().splitlines()[-1])
    assert changed == {}, f"environment changed at import: {changed}"


# What makes a test slow: a Prefect server (the harness, a CLI child on it), or Keras training.
SLOW_FIXTURES = {"prefect_harness", "cli_env"}
SLOW_CALLS = {"train_model", "fit_arrays", "train_global", "closecast", "train_task",
              "fit_hybrid"}


def _marked_slow(decorators: list[ast.expr]) -> bool:
    return any("slow" in ast.unparse(d) for d in decorators)


def _uses(node: ast.FunctionDef) -> set[str]:
    """Fixtures a function requests (arguments, usefixtures) and the names it calls."""
    names = {a.arg for a in node.args.args}
    for d in node.decorator_list:
        if "usefixtures" in ast.unparse(d) and isinstance(d, ast.Call):
            names |= {a.value for a in d.args if isinstance(a, ast.Constant)}
    names |= {n.func.id for n in ast.walk(node)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return names


def test_every_test_that_trains_or_starts_a_server_is_marked_slow():
    conftest = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    shared = {n.name: n for n in conftest.body if isinstance(n, ast.FunctionDef)}
    unmarked, checked = [], 0
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_slow = any(isinstance(n, ast.Assign) and "pytestmark" in ast.unparse(n.targets[0])
                          and "slow" in ast.unparse(n.value) for n in tree.body)
        functions = {**shared, **{n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}}

        def slow_need(name: str, seen: frozenset = frozenset(), functions=functions) -> bool:
            if name in SLOW_FIXTURES or name in SLOW_CALLS:
                return True
            node = functions.get(name)
            if node is None or name in seen or name.startswith("test_"):
                return False
            return any(slow_need(n, seen | {name}) for n in _uses(node))

        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                checked += 1
                needs = any(slow_need(n) for n in _uses(node))
                if needs and not (module_slow or _marked_slow(node.decorator_list)):
                    unmarked.append(f"{path.name}::{node.name}")
    assert checked > 100 and unmarked == []


# Asking which head a network has: comparing a head's name, reading a network's name or output
# width. tasks/forecaster/ owns that (``heads.head_of``, ``heads.head_named``); everyone else asks
# the head object what it does. tasks/core/config.py is the schema: it names the heads a config
# may choose and what each needs of the features, validated when a config is loaded.
HEAD_CHECK = re.compile(r"""\bhead\s*[!=]=|[!=]=\s*["'](hybrid|student_t|point)["']"""
                        r"""|["'](hybrid|student_t|point)["']\s*(==|!=)|\bis_hybrid\b"""
                        r"""|output_shape\s*\[|shape\[1\]\s*[!=]=\s*[13]\b|HYBRID_NAME""")
HEAD_OWNERS = ("tasks.forecaster", "tasks.core.config")


def head_checks(path: Path) -> list[str]:
    """Each line of a file that asks which head a network has, as ``file:line: text``."""
    return [f"{path.name}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if HEAD_CHECK.search(line.split("#")[0])]


def test_the_head_check_finds_each_way_of_asking(tmp_path):
    probe = tmp_path / "probe.py"
    asked = ['if cfg.head == "hybrid":', "packed = model.head != 'point'",
             "if is_hybrid(model):", "if raw.shape[1] != 3:", 'if "student_t" == name:',
             "width = network.output_shape[-1]"]
    probe.write_text("\n".join([*asked, "head = head_named(cfg.head)", "x.head(3)",
                                "if head.packs_targets:"]))
    assert len(head_checks(probe)) == len(asked)


def test_only_the_forecaster_package_asks_which_head_a_network_has():
    modules = project_modules()
    assert any(name.startswith("tasks.forecaster") and head_checks(path)
               for name, path in modules.items())  # the owner does ask
    offenders = [hit for name, path in modules.items()
                 if not name.startswith(HEAD_OWNERS) for hit in head_checks(path)]
    assert offenders == []


VERSION_FILE_NAMES = ("metrics.json", "promotion.json", "distribution.json", "manifest.json")
VERSION_MODULE = "tasks.core.version_files"


def test_only_the_version_module_names_a_version_file():
    """A version's records are read and written through tasks/core/version_files.py: no other
    module of flows/ or tasks/ opens (or names) those files."""
    modules = project_modules()
    owner = modules[VERSION_MODULE].read_text(encoding="utf-8")
    assert all(f'"{name}"' in owner for name in VERSION_FILE_NAMES)
    naming = sorted(f"{path.relative_to(ROOT)}: {name}" for module, path in modules.items()
                    if module != VERSION_MODULE for name in VERSION_FILE_NAMES
                    if name in path.read_text(encoding="utf-8"))
    assert naming == [], "version files named outside the version module: " + ", ".join(naming)


MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


def oversized(path: Path) -> list[str]:
    """``path:name:lines`` for the module when over MAX_MODULE_LINES and for each function or
    method in it (nested ones included) over MAX_FUNCTION_LINES, from ``def`` to its last line."""
    text = path.read_text(encoding="utf-8")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    lines = len(text.splitlines())
    out = [f"{shown}:<module>:{lines}"] if lines > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                out.append(f"{shown}:{node.name}:{length}")
    return out


def test_the_size_check_finds_a_long_module_and_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n"
                                      + "\n" * MAX_MODULE_LINES)
    assert oversized(tmp_path / "long.py") == [
        f"{tmp_path / 'long.py'}:<module>:{MAX_FUNCTION_LINES + 5 + MAX_MODULE_LINES}",
        f"{tmp_path / 'long.py'}:long:{MAX_FUNCTION_LINES + 1}"]


def test_no_module_over_350_lines_and_no_function_over_60():
    offenders = [hit for path in project_modules().values() for hit in oversized(path)]
    assert offenders == [], "too long (path:name:lines): " + ", ".join(offenders)
