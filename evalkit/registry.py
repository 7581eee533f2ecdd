"""The one registry pattern: named implementations of one kind, built-ins plus Python entry-point plug-ins.

Evaluators (:data:`evalkit.evaluators.base.EVALUATORS`, entry-point group ``evalkit.evaluators``),
checkpoint kinds (:data:`evalkit.checkpoints.kinds.CHECKPOINT_KINDS`, group ``evalkit.checkpoint_kinds``)
and the lm-eval task kinds of the general axis are each a :class:`Registry`. Built-ins register when
their modules are imported (listed in ``builtins``, imported at the first lookup so listing names stays
fast); plug-ins are read from the entry-point group once. A plug-in that fails to load warns once and
disables only itself; asking for it by name is an error naming the plug-in.

Examples
--------
>>> shapes: Registry[type] = Registry("shape")
>>> @shapes.register
... class Circle:
...     name = "circle"
>>> shapes.get("circle") is Circle, shapes.names()
(True, ['circle'])
>>> shapes.get("circel")
Traceback (most recent call last):
...
evalkit.errors.UsageError: unknown shape 'circel'. Did you mean 'circle'? Available: circle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import UsageError, did_you_mean, warn

__all__ = ["Registry"]

T = TypeVar("T")


def _name_attribute(obj: Any) -> Any:
    return getattr(obj, "name", None)


class Registry(Generic[T]):
    """Named entries of one kind (``what``: "evaluator", "checkpoint kind", ...).

    ``entry_point_group``: the Python entry-point group plug-ins register in (None: built-ins only);
    ``builtins``: modules whose import registers the built-in entries; ``name_of``: an entry's name
    (its ``name`` attribute by default), which a plug-in's entry-point name must equal.
    """

    def __init__(
        self,
        what: str,
        *,
        entry_point_group: str | None = None,
        builtins: tuple[str, ...] = (),
        name_of: Callable[[Any], Any] = _name_attribute,
    ):
        self.what = what
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtins
        self._name_of = name_of
        self._entries: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # plug-in name -> the one-line reason it failed to load
        self._plugins_loaded = False

    def register(self, entry: T) -> T:
        """Add ``entry`` under its name; usable as a class decorator. A second entry of that name is an error."""
        name = self._name_of(entry)
        if not isinstance(name, str) or not name:
            label = getattr(entry, "__qualname__", repr(entry))
            raise TypeError(f"{label} needs a non-empty class attribute 'name' to be registered")
        known = self._entries.get(name)
        if known is not None and known is not entry:
            label = getattr(known, "__qualname__", repr(known))
            article = "an" if self.what[:1] in "aeiou" else "a"
            raise ValueError(f"{article} {self.what} named {name!r} is already registered ({label})")
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        """Every registered name (built-ins and working plug-ins), sorted."""
        self._load_builtins()
        self._load_plugins()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name gets a did-you-mean :class:`UsageError`."""
        names = self.names()
        if name in self._broken:
            raise UsageError(f"{self._broken[name]}; fix or uninstall the plug-in.")
        if name not in self._entries:
            raise UsageError(f"unknown {self.what} {name!r}.{did_you_mean(name, names)}")
        return self._entries[name]

    def find(self, name: str) -> T | None:
        """The entry registered as ``name``, or None (also when a built-in module cannot be imported:
        entries registered directly still count)."""
        try:
            self.names()
        except ImportError:
            pass
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def _load_builtins(self) -> None:
        for module in self._builtin_modules:  # importing a module runs its register() decorators
            importlib.import_module(module)

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.entry_point_group is None:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            if ep.name in self._entries:  # a built-in or an earlier plug-in of that name wins
                continue
            try:
                entry = ep.load()
                if self._name_of(entry) != ep.name:
                    raise TypeError(
                        f"it is registered as {ep.name!r} but its class says "
                        f"name={self._name_of(entry)!r}; make them equal"
                    )
                self.register(entry)
            except Exception as exc:  # noqa: BLE001 - whatever a plug-in raises must not break the others
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                self._broken[ep.name] = f"{self.what} plug-in {ep.name!r} ({ep.value}) failed to load: {reason}"
                warn(f"{self._broken[ep.name]}; other {self.what}s are unaffected.")
