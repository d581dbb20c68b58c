"""The package keeps its layers: data flows one way, and no module reaches into another's private names.

Every module under ``src/renewforecast`` is parsed (not imported) and each of
its imports of renewforecast, at module level or inside a function, is held
to three rules (``docs`` DESIGN section 2, and each layer package's docstring):

(a) no module imports another module's ``_private`` name, or a private module
    of another package;
(b) a layer imports only the layers to its left:
    foundation < io < ledger < models < analyses < reports < cli
    (``spark`` runs the engines on Spark: it sits with analyses);
    (``demo`` writes a synthetic org, so it may use io and ledger too);
(c) imports of renewforecast sit at the top of the module, where a reader
    sees what the module depends on; an import inside a function hides a
    layer crossing and needs a reason in :data:`FUNCTION_IMPORTS_ALLOWED`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "renewforecast"

#: Rank of each layer: a module may import only layers of its rank or lower.
LAYERS = {
    "foundation": 0,
    "io": 1,
    "ledger": 2,
    "demo": 2,
    "models": 3,
    "analyses": 4,
    "spark": 4,
    "reports": 5,
    "cli": 6,
}

#: (importer, imported) -> private names it may import; none today.
PRIVATE_IMPORTS_ALLOWED: dict[tuple[str, str], set[str]] = {}

#: Modules whose functions may import renewforecast, and why.
FUNCTION_IMPORTS_ALLOWED = {
    "renewforecast.cli": "each command imports the engines it runs when it runs, so `renewforecast --help` "
    "and a failing argument check answer at once, and only `report` loads papermill",
}


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str | None:
    """The layer of a renewforecast module (None for the package's front door, ``renewforecast`` itself)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if parts[1] in ("io", "ledger", "models", "analyses", "reports"):
        return parts[1]
    if parts[1] in ("cli", "__main__"):
        return "cli"
    if parts[1] in ("demo", "spark"):
        return parts[1]
    return "foundation"


def _package(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = _package(module, is_package).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path, src: Path = SRC):
    """(imported module, names imported from it, line, inside a function) for every import of renewforecast."""
    module = _module_name(path, src)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for inner in ast.walk(fn):
                if inner is not fn:
                    in_function.add(id(inner))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "renewforecast":
                    yield alias.name, [], node.lineno, id(node) in in_function
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            if target.split(".")[0] != "renewforecast":
                continue
            names = [a.name for a in node.names]
            # ``from renewforecast.ledger import valuation`` imports a module, not a name.
            for name in names:
                sub = (src / "renewforecast").joinpath(*target.split(".")[1:], name)
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    yield f"{target}.{name}", [], node.lineno, id(node) in in_function
                else:
                    yield target, [name], node.lineno, id(node) in in_function


MODULES = sorted(PACKAGE.rglob("*.py"))


def _private_module_outside_its_package(importer: str, imported: str, importer_is_package: bool) -> bool:
    parts = imported.split(".")
    home = _package(importer, importer_is_package)
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and part != "__init__":
            owner = ".".join(parts[:i])
            if not (home == owner or home.startswith(owner + ".")):
                return True
    return False


def _problems(path: Path, src: Path = SRC) -> list[str]:
    importer = _module_name(path, src)
    is_package = path.name == "__init__.py"
    layer = _layer(importer)
    where = path.relative_to(src)
    found = []
    for imported, names, line, in_function in _imports(path, src):
        # (a) private names and private modules of others
        if imported != importer:
            allowed = next(
                (
                    v
                    for (who, whom), v in PRIVATE_IMPORTS_ALLOWED.items()
                    if (importer == who or importer.startswith(who + ".")) and imported == whom
                ),
                set(),
            )
            for name in names:
                if name.startswith("_") and name not in allowed:
                    found.append(f"{where}:{line}: imports the private name {name} of {imported}")
            if _private_module_outside_its_package(importer, imported, is_package):
                found.append(f"{where}:{line}: imports {imported}, a private module of another package")
        # (b) layers: the package's front door (renewforecast/__init__) gathers the public names, so it is exempt
        if layer is not None:
            target = _layer(imported)
            if target is None:
                found.append(f"{where}:{line}: imports the package itself (renewforecast), which imports every layer")
            elif LAYERS[target] > LAYERS[layer] or (layer == "foundation" and target == "demo"):
                found.append(f"{where}:{line}: {layer} imports {imported} ({target}), a layer to its right")
        # (c) imports hidden in functions
        if in_function and not any(importer == m or importer.startswith(m + ".") for m in FUNCTION_IMPORTS_ALLOWED):
            found.append(f"{where}:{line}: imports {imported} inside a function; move it to the top of the module")
    return list(dict.fromkeys(found))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_keeps_the_layer_rules(path):
    assert _problems(path) == []


def test_the_rules_catch_what_they_are_meant_to(tmp_path):
    """A private import, a layer crossing and a hidden import are each reported."""
    fake = tmp_path / "src" / "renewforecast"
    (fake / "ledger").mkdir(parents=True)
    (fake / "ledger" / "__init__.py").write_text("")
    (fake / "ledger" / "bad.py").write_text(
        "from renewforecast.analyses.saas_metrics import retention_kpis\n"
        "from renewforecast.ledger.valuation import _secret\n"
        "def f():\n"
        "    from renewforecast.book import Book\n"
    )
    problems = _problems(fake / "ledger" / "bad.py", tmp_path / "src")
    assert any("a layer to its right" in p for p in problems)
    assert any("private name _secret" in p for p in problems)
    assert any("inside a function" in p for p in problems)


def test_layer_packages_state_their_rules():
    for name in ("io", "ledger", "models", "analyses", "reports"):
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and f"Layer: {name}." in doc, f"renewforecast.{name} does not say what it may import"
