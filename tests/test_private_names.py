"""A module-level underscore means "not imported from another package".

A package is ``evalkit.X`` (a subpackage or a top-level module). Outside package P nobody imports P's
private modules (``evalkit.gate._preflight``) nor a private name of any of P's modules
(``from evalkit.checkpoints.spec import _split_label``, ``charts._RC``); what other packages need, P
exports under a public name. evalkit's own top-level private modules (``evalkit._io``, ``_paths``,
``_validate``, ``_compare``, ...) are shared by the whole library, so importing them is allowed — their
private *names* are not. ``KNOWN_PRIVATE_IMPORTS`` lists what still crosses; it only shrinks (an entry
that no longer occurs fails the test, so a fix removes it here too).
"""

from __future__ import annotations

import ast
from pathlib import Path

from test_import_cycles import _modules

#: (importing package, imported module, private name or "" for the private module itself).
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_module(module: str) -> bool:
    """A private module of a subpackage (``evalkit.gate._preflight``), not evalkit's own ``evalkit._io``."""
    return any(_private(part) for part in module.split(".")[2:])


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
    return ".".join(p for p in (base, node.module or "") if p)


def _crossings(module: str, path: Path, known: dict[str, Path]) -> set[tuple[str, str, str]]:
    """(importing package, imported module, private name) for each private import across packages."""
    here = _package(module)
    found: set[tuple[str, str, str]] = set()
    aliases: dict[str, str] = {}  # local name -> evalkit module it is bound to
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            if not target.startswith("evalkit"):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:  # ``from . import x``: a module
                    aliases[alias.asname or alias.name] = submodule
                    if _package(submodule) != here and _private_module(submodule):
                        found.add((here, submodule, ""))
                elif _package(target) != here and (_private(alias.name) or _private_module(target)):
                    found.add((here, target, alias.name if _private(alias.name) else ""))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("evalkit") and _package(alias.name) != here and _private_module(alias.name):
                    found.add((here, alias.name, ""))
                if alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr)
                and node.value.id in aliases and _package(aliases[node.value.id]) != here):
            found.add((here, aliases[node.value.id], node.attr))
    return found


def _all_crossings() -> set[tuple[str, str, str]]:
    known = _modules()
    return {c for name, path in known.items() for c in _crossings(name, path, known)}


def _short(crossing: tuple[str, str, str]) -> tuple[str, str, str]:
    return crossing[0].removeprefix("evalkit."), crossing[1].removeprefix("evalkit."), crossing[2]


def test_no_private_name_crosses_a_package_boundary_except_the_known_ones():
    crossings = {_short(c) for c in _all_crossings()}
    assert sorted(crossings - KNOWN_PRIVATE_IMPORTS) == [], "a private name is imported from another package"
    assert sorted(KNOWN_PRIVATE_IMPORTS - crossings) == [], "fixed: delete these from KNOWN_PRIVATE_IMPORTS"


def test_the_walk_sees_each_form_of_private_import(tmp_path):
    known = {"evalkit.gate._preflight": tmp_path / "p.py", "evalkit.report.charts": tmp_path / "c.py",
             "evalkit.api": tmp_path / "api.py", "evalkit._io": tmp_path / "io.py"}
    source = ("from .gate._preflight import check\nfrom .checkpoints.spec import _split_label\n"
              "from .report import charts\nfrom ._io import atomic_write_text, _tmp\nx = charts._RC\n")
    (tmp_path / "api.py").write_text(source)
    assert {_short(c) for c in _crossings("evalkit.api", tmp_path / "api.py", known)} == {
        ("api", "gate._preflight", ""), ("api", "checkpoints.spec", "_split_label"), ("api", "report.charts", "_RC"),
        ("api", "_io", "_tmp")}
