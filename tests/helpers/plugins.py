"""A third-party evaluator plug-in installed for one test: a module plus a dist-info with an entry point."""

from __future__ import annotations

from pathlib import Path


def install_plugin(tmp_path: Path, monkeypatch, module: str, source: str, entry_point: str) -> None:
    """Make ``module`` (with ``source``) importable and register ``entry_point`` (``"name = module:Attr"``)
    in the ``evalkit.evaluators`` group; the registry is reset so the next lookup scans entry points again."""
    from evalkit.evaluators import base

    (tmp_path / f"{module}.py").write_text(source)
    dist_name = module.replace("_", "-")
    dist = tmp_path / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[evalkit.evaluators]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(base, "_entry_points_loaded", False)
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(base, "_BROKEN", {})
