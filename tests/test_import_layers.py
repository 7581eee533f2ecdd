"""The package-level import graph runs one way: each package imports only packages on lower floors.

The floors follow the data flow (spec -> LM -> evaluators -> records (store) -> comparison -> verdict),
with the shared low-level pieces beneath and the entry points (API, integrations, demo, CLI) on top. The
report renders comparison dicts and imports nothing above them, so it sits low: the records, the gate and
the Comparison show themselves (Jupyter views) through it. Imports inside functions count too: a back edge hidden in a function still ties the packages
together. ``KNOWN_BACK_EDGES`` lists the arrows that still run back up; it only shrinks (an entry that no
longer exists fails the test, so a fix removes it here too).
"""

from __future__ import annotations

from test_import_cycles import _cycles, _imported, _modules

#: Bottom to top. A package is ``evalkit.X`` (the top-level module or subpackage X).
FLOORS = [
    ["parameter_words", "errors", "registry", "lm_eval_tasks", "tokenization", "_paths", "_pairs", "_io", "_schema", "_validate", "progress", "parallel", "testing"],
    ["comparison_format", "markdown_text", "metrics", "taxonomy"],
    ["report"],                         # renders comparison dicts: the files, the notebook views
    ["records"],
    ["store", "evaluators"],
    ["checkpoints", "taskconfig"],
    ["general", "voc"],
    ["run"],
    ["_compare"],
    ["gate"],
    ["sequential"],
    ["exports"],                        # pandas, mlflow, wandb, model cards: what the Comparison hands out
    ["comparison"],
    ["api"],
    ["compare_run"],
    ["integrations", "demo"],
    ["cli"],
    ["__main__"],
]

#: (from, to) package arrows that run back up today (issue 25 lists them; each fix deletes its line).
KNOWN_BACK_EDGES: set[tuple[str, str]] = set()


def _floor_of() -> dict[str, int]:
    return {f"evalkit.{name}": level for level, names in enumerate(FLOORS) for name in names}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _package_edges() -> set[tuple[str, str]]:
    modules = _modules()
    edges = set()
    for name, path in modules.items():
        for target in _imported(name, path, modules):
            source, dest = _package(name), _package(target)
            if source != dest and dest != "evalkit":
                edges.add((source, dest))
    return edges


def _short(edge: tuple[str, str]) -> tuple[str, str]:
    return edge[0].removeprefix("evalkit."), edge[1].removeprefix("evalkit.")


def test_every_package_has_a_floor():
    floors = _floor_of()
    packages = {_package(m) for m in _modules()} - {"evalkit"}
    assert sorted(packages - floors.keys()) == []


def test_no_import_runs_back_up_except_the_known_ones():
    floors = _floor_of()
    edges = _package_edges()
    back = {_short(e) for e in edges if floors.get(e[0], 0) < floors.get(e[1], 0)}
    assert sorted(back - KNOWN_BACK_EDGES) == [], "a new import runs back up the layers"
    assert sorted(KNOWN_BACK_EDGES - back) == [], "fixed: delete these from KNOWN_BACK_EDGES"


def test_without_the_known_back_edges_the_package_graph_has_no_cycle():
    edges = {e for e in _package_edges() if _short(e) not in KNOWN_BACK_EDGES}
    graph: dict[str, set[str]] = {}
    for source, dest in edges:
        graph.setdefault(source, set()).add(dest)
        graph.setdefault(dest, set())
    assert _cycles(graph) == []


def test_the_floor_check_sees_a_back_edge():
    floors = _floor_of()
    assert floors["evalkit.records"] < floors["evalkit.gate"]  # so records -> gate would be caught
