"""A third-party plug-in installed for one test: a module plus a dist-info with an entry point."""

from __future__ import annotations

from pathlib import Path


def install_plugin(tmp_path: Path, monkeypatch, module: str, source: str, entry_point: str,
                   group: str = "evalkit.evaluators") -> None:
    """Make ``module`` (with ``source``) importable and register ``entry_point`` (``"name = module:Attr"``)
    in the entry-point ``group`` (evaluators or checkpoint kinds); that group's registry is reset so the
    next lookup scans entry points again."""
    from evalkit.checkpoints.registry import CHECKPOINT_KINDS
    from evalkit.evaluators import EVALUATORS

    (tmp_path / f"{module}.py").write_text(source)
    dist_name = module.replace("_", "-")
    dist = tmp_path / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = {EVALUATORS.entry_point_group: EVALUATORS, CHECKPOINT_KINDS.entry_point_group: CHECKPOINT_KINDS}[group]
    registry._load_builtins()  # the built-ins registered before the snapshot, plug-ins read afresh after it
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_broken", {})
