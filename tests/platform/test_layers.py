"""The layout holds: imports only run down the layers (ARCHITECTURE.md), the domain core never
imports Dagster, and no module grows past 500 lines."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# layer -> the top-level packages it must never import (everything above it)
FORBIDDEN = {
    "safetygraph": {
        "dagster",
        "definitions",
        "pipeline_assets",
        "checks",
        "sensors",
        "resources",
        "schemas",
    },
    "schemas": {"dagster", "definitions", "pipeline_assets", "checks", "sensors", "resources"},
    "resources": {"definitions", "pipeline_assets", "checks", "sensors"},
    "pipeline_assets": {"definitions", "checks", "sensors"},
    "checks": {"definitions", "sensors"},
    "sensors": {"definitions", "checks", "pipeline_assets"},
}
# the CLI and the Python API sit above definitions (they run the jobs), so they may import it, lazily
ALLOWED = {
    "safetygraph/cli.py": {"definitions", "dagster"},
    "safetygraph/api.py": {"definitions", "dagster"},
}
MAX_LINES = 500


def _modules(layer: str) -> list[Path]:
    return sorted(p for p in (REPO / layer).rglob("*.py") if "__pycache__" not in p.parts)


LOCATION = (
    "safetygraph.location"  # the code location's folders import as safetygraph.location.<layer>
)


def _root(module: str) -> str:
    """The layer a module belongs to: ``safetygraph.location.checks.x`` is ``checks``."""
    if module.startswith(LOCATION + "."):
        return module[len(LOCATION) + 1 :].split(".")[0]
    return module.split(".")[0]


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(_root(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == LOCATION:  # from safetygraph.location import definitions
                roots.update(a.name for a in node.names)
            else:
                roots.add(_root(node.module))
    return roots


def _forbidden(roots: set[str], forbidden: set[str]) -> set[str]:
    """The roots among ``roots`` that ``forbidden`` rules out; ``dagster`` stands for every
    ``dagster_*`` package of Dagster's distributions (dagster_k8s, dagster_webserver, ...)."""
    return {
        r for r in roots if r in forbidden or ("dagster" in forbidden and r.startswith("dagster_"))
    }


def test_imports_only_run_down_the_layers():
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in _modules(layer):
            rel = path.relative_to(REPO).as_posix()
            allowed = ALLOWED.get(rel, set())
            bad = {
                r
                for r in _forbidden(_imported_roots(path), forbidden)
                if r not in allowed and not ("dagster" in allowed and r.startswith("dagster_"))
            }
            if bad:
                violations.append(f"{rel} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_the_layer_rule_catches_a_dagster_package_in_the_core(tmp_path):
    """A lazy ``from dagster_k8s.job import ...`` inside a core function is caught, as is
    ``import dagster``; a module merely named like one is not."""
    module = tmp_path / "m.py"
    module.write_text(
        "import dagsterish_helper_not\n"
        "def f():\n    from dagster_k8s.job import construct_dagster_k8s_job\n"
        "    import dagster_webserver\n"
    )
    roots = _imported_roots(module)
    assert _forbidden(roots, FORBIDDEN["safetygraph"]) == {"dagster_k8s", "dagster_webserver"}
    assert _forbidden({"duckdb", "pyarrow"}, FORBIDDEN["safetygraph"]) == set()


def test_core_has_no_relative_imports_across_stages():
    """Every import inside the core is absolute (``from safetygraph.<stage> ...``), so a module can
    move between stage folders without silently importing the wrong neighbour."""
    relative = [
        f"{p.relative_to(REPO)}:{n.lineno}"
        for p in _modules("safetygraph")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level > 1
    ]
    assert not relative, relative


def test_every_import_of_the_core_resolves():
    """Every ``safetygraph`` module named by an import (absolute or relative, lazy ones inside
    functions included) exists: a moved module cannot leave a stale import behind."""
    missing = []
    for layer in (*FORBIDDEN, "bench", "tests"):
        for path in _modules(layer):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom):
                    continue
                if node.level:
                    base = path.parent
                    for _ in range(node.level - 1):
                        base = base.parent
                    parts = [*base.relative_to(REPO).parts, *(node.module or "").split(".")]
                else:
                    parts = (node.module or "").split(".")
                if parts[0] != "safetygraph":
                    continue
                if parts[:2] == ["safetygraph", "location"] and len(parts) > 2:
                    parts = parts[2:]  # the code location's folders live at the repository root
                target = REPO.joinpath(*[p for p in parts if p])
                if not (target.with_suffix(".py").exists() or (target / "__init__.py").exists()):
                    missing.append(f"{path.relative_to(REPO)}:{node.lineno} {'.'.join(parts)}")
    assert not missing, missing


def test_no_module_over_500_lines():
    long = {
        str(p.relative_to(REPO)): n
        for layer in (*FORBIDDEN, "bench")
        for p in _modules(layer)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


# the asset layer wires, it does not query: DuckDB and SQL live in the core
ASSET_LAYERS = ("pipeline_assets", "checks")


def _sql_imports(path: Path) -> set[str]:
    """``duckdb`` and the core's DuckDB helpers (``safetygraph.core.duck``) imported by ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "duckdb")
            found.update(a.name for a in node.names if a.name == "safetygraph.core.duck")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "duckdb" or node.module == "safetygraph.core.duck":
                found.add(node.module)
            elif node.module == "safetygraph.core":
                found.update(f"safetygraph.core.{a.name}" for a in node.names if a.name == "duck")
    return found


def _asset_layer_violations(find) -> list[str]:
    """``module: what find(module) found`` for each asset-layer module where it finds something."""
    return [
        f"{p.relative_to(REPO).as_posix()}: {found}"
        for layer in ASSET_LAYERS
        for p in _modules(layer)
        if (found := find(p))
    ]


def test_the_asset_layer_runs_no_sql():
    violations = _asset_layer_violations(_sql_imports)
    assert not violations, "\n".join(violations)


def test_the_sql_rule_catches_duckdb_in_an_asset_module(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import duckdb\nfrom safetygraph.core import duck, tables\n"
        "def f():\n    from safetygraph.core.duck import connect\n"
    )
    assert _sql_imports(module) == {"duckdb", "safetygraph.core.duck"}
    module.write_text("from safetygraph.core import tables\nimport pyarrow\n")
    assert _sql_imports(module) == set()


MAX_FUNCTION_LINES = 60


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_asset_layer_functions_stay_short():
    """An asset or check wires, attaches metadata and returns: the work is in the core."""
    violations = _asset_layer_violations(_long_functions)
    assert not violations, "\n".join(violations)


# tests and benchmarks read as scenarios: a longer function is one story, up to 100 lines
MAX_TEST_FUNCTION_LINES = 100
# functions allowed over the limit, by "path::name", each with the reason
LONG_FUNCTION_EXCEPTIONS: dict[str, str] = {}


def test_every_function_stays_short():
    """The 60-line rule for every module of the package and the code location (tests and benches:
    100 lines), except the functions listed by name with their reason."""
    found = []
    for layer in PACKAGES:
        for p in _modules(layer):
            found += [(p, f) for f in _long_functions(p)]
    for folder in ("tests", "bench"):
        for p in _modules(folder):
            found += [(p, f) for f in _long_functions(p, MAX_TEST_FUNCTION_LINES)]
    found += [(REPO / "definitions.py", f) for f in _long_functions(REPO / "definitions.py")]
    named = {f"{p.relative_to(REPO).as_posix()}::{f.split(' ')[0]}": f for p, f in found}
    violations = [f"{k}: {v}" for k, v in named.items() if k not in LONG_FUNCTION_EXCEPTIONS]
    assert not violations, "\n".join(violations)
    stale = set(LONG_FUNCTION_EXCEPTIONS) - set(named)
    assert not stale, f"listed as exceptions but short now (remove them): {sorted(stale)}"


def test_the_length_rule_counts_a_long_function(tmp_path):
    module = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module.write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert _long_functions(module) == [f"long ({MAX_FUNCTION_LINES + 1} lines, line 5)"]


PACKAGES = ("safetygraph", "pipeline_assets", "checks", "resources", "sensors", "schemas")


def _module_names(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of every module under ``root``'s packages (and definitions.py)."""
    out = {}
    for pkg in packages:
        for p in sorted((root / pkg).rglob("*.py")):
            if "__pycache__" not in p.parts:
                name = ".".join(p.relative_to(root).with_suffix("").parts)
                out[name.removesuffix(".__init__")] = p
    if (root / "definitions.py").exists():
        out["definitions"] = root / "definitions.py"
    return out


def _runtime_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of the module, at any depth (functions too), except the ones under
    ``if TYPE_CHECKING:``, which never run."""
    found = []

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child)

    walk(ast.parse(path.read_text(), str(path)))
    return found


def _import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    mods = _module_names(root, packages)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in _runtime_imports(path):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            deps.update(o for t in targets if (o := owner(t)) and o != name)
        graph[name] = deps
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while (x := stack.pop()) != v:
                    on.discard(x)
                    comp.append(x)
                on.discard(v)
                if comp:
                    out.append(sorted([v, *comp]))
    return out


def test_no_import_circles():
    """No module reaches itself through imports, function-level ones included: each layer's
    modules form a tree one can read bottom-up."""
    circles = _circles(_import_graph(REPO))
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_circle_rule_finds_a_function_level_circle(tmp_path):
    pkg = tmp_path / "safetygraph"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from safetygraph.b import x\n")
    (pkg / "b.py").write_text("def x():\n    from safetygraph import a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from safetygraph import a\n"
    )
    assert _circles(_import_graph(tmp_path, ("safetygraph",))) == [
        ["safetygraph.a", "safetygraph.b"]
    ]


def test_benches_import_no_test_code():
    """A benchmark runs from the installed package alone; test helpers are not part of it."""
    offenders = [
        f"{p.name}: {ast.unparse(n)}"
        for p in sorted((REPO / "bench").glob("*.py"))
        for n in _runtime_imports(p)
        if (n.module if isinstance(n, ast.ImportFrom) else n.names[0].name or "").split(".")[0]
        == "tests"
    ]
    assert not offenders, offenders


def _storage_paths(path: Path) -> list[str]:
    """Where ``path`` builds a storage path itself: the IO manager's path rule (``asset_parts``)
    or the ``assets`` folder named in a string."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"line {n.lineno}: {ast.unparse(n)}"
        for n in ast.walk(tree)
        if (isinstance(n, ast.Name) and n.id == "asset_parts")
        or (isinstance(n, ast.alias) and n.name == "asset_parts")
        or (isinstance(n, ast.Constant) and n.value == "assets")
    ]


def test_the_asset_layer_builds_no_storage_paths():
    """The IO manager owns where assets are stored: assets and checks receive tables (inputs, or
    ``settings.stored(KEY, partition)``), never rebuild the paths."""
    violations = _asset_layer_violations(_storage_paths)
    assert not violations, "\n".join(violations)


def test_the_path_rule_catches_a_path_built_in_an_asset(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from safetygraph.core.storage import asset_parts\n"
        "def a(storage):\n    return storage.read_table('assets', 'qa_report.parquet')\n"
    )
    assert _storage_paths(module) == [
        "line 1: asset_parts",
        "line 3: 'assets'",
    ]
    module.write_text("def a(settings, key):\n    return settings.stored(key, 'src')\n")
    assert _storage_paths(module) == []
