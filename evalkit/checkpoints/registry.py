"""The checkpoint kinds: the built-ins of :mod:`.kinds` and plug-ins from the ``evalkit.checkpoint_kinds``
entry-point group (a :class:`~evalkit.checkpoints.kinds.CheckpointKind` subclass whose ``name`` is the
entry-point name; its specs are written ``NAME:LOCATION``). Kept apart from :mod:`.kinds` so spec parsing
can ask for a plug-in without importing the built-in kinds' loaders."""

from __future__ import annotations

from ..registry import Registry

__all__ = ["CHECKPOINT_KINDS", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "evalkit.checkpoint_kinds"

#: Built-in kinds register when :mod:`.kinds` is imported; plug-ins are read at the first lookup.
CHECKPOINT_KINDS: Registry[type] = Registry(
    "checkpoint kind", entry_point_group=ENTRY_POINT_GROUP, builtins=("evalkit.checkpoints.kinds",)
)
