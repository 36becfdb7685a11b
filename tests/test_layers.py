"""The package's layering, read from its import statements: no import cycles, device code standalone, the
CLI talking to the API only, and the runtimes imported only by their backend and their declaration."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "uninext_deploy"
RUNTIME_PACKAGES = ("onnxruntime", "openvino", "tensorrt", "nncf", "cuda")
# who may import a runtime package: its backend, the one runtime layer (with TensorRT's engine builder, shipped
# beside it), and ORT's quantizer for the QDQ graph (with its calibrators, fed in a stream by ranges.py)
RUNTIME_IMPORTERS = {"backends", "device/runtimes.py", "device/build_engine.py", "export/precision.py",
                     "export/ranges.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """Absolute names of what ``path`` imports (relative imports resolved), at module level only or anywhere."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` imports are for annotations, not dependencies
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def internal(path: Path, top_level_only: bool = True) -> set[str]:
    return {name for name in imports(path, top_level_only) if name in MODULES and name != module_name(path)}


def test_no_import_cycles():
    """Counting the imports inside functions too: a lazy import is still a dependency."""
    graph = {name: internal(path, top_level_only=False) for name, path in MODULES.items()}
    cycles, done = [], set()

    def visit(node, trail):
        if node in trail:
            cycles.append(" -> ".join(trail[trail.index(node):] + [node]))
        elif node not in done:
            for target in graph[node]:
                visit(target, trail + [node])
            done.add(node)

    for start in graph:
        visit(start, [])
    assert cycles == []


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("uninext_deploy.device.")])
def test_device_code_imports_nothing_of_the_host(name):
    """Bundles ship these files verbatim beside each other: they import each other as plain modules."""
    found = imports(MODULES[name], top_level_only=False)
    host = {n for n in found if n.startswith("uninext_deploy")}
    assert host == set() and not {"torch", "onnx"} & {n.split(".")[0] for n in found}


def test_the_cli_talks_to_the_api_only():
    """... and to console/, which shows the steps the library announces (the terminal is the CLI's)."""
    allowed = {"uninext_deploy.api", "uninext_deploy.cli_groups", "uninext_deploy.console",
               "uninext_deploy.console.progress", "uninext_deploy.console.reporters"}
    for name in ("uninext_deploy.cli", "uninext_deploy.cli_groups"):
        found = internal(MODULES[name], top_level_only=False) - {"uninext_deploy"}  # `from . import api`
        assert found <= allowed, found


def test_runtimes_are_imported_by_their_backend_and_declaration_only():
    offenders = []
    for name, path in MODULES.items():
        where = path.relative_to(PACKAGE).as_posix()
        if where.split("/")[0] in RUNTIME_IMPORTERS or where in RUNTIME_IMPORTERS:
            continue
        used = {n.split(".")[0] for n in imports(path, top_level_only=False)} & set(RUNTIME_PACKAGES)
        if used:
            offenders.append(f"{where}: {sorted(used)}")
    assert offenders == []


def test_lower_layers_do_not_import_the_harness():
    harness = {f"uninext_deploy.{m}" for m in ("parity", "divergence", "profile", "bundle", "optimize", "report",
                                               "verify", "api", "cli", "pipeline")}
    for name, path in MODULES.items():
        if name.startswith(("uninext_deploy.export", "uninext_deploy.backends", "uninext_deploy.models",
                            "uninext_deploy.device")):
            assert not internal(path, top_level_only=False) & harness, name
