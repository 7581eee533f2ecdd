"""What every checkpoint object shares: a fingerprint computed once and an ``LM`` loaded on first use.

:class:`~evalkit.checkpoints.Checkpoint` (a spec) and :class:`~evalkit.checkpoints.memory.InMemoryCheckpoint`
(a model object) differ only in how they compute the two; the model is loaded at most once and shared by
every evaluator, and a run answered entirely from the result store never loads it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LazyCheckpoint"]


class LazyCheckpoint:
    """Caches :meth:`_compute_fingerprint` as :attr:`fingerprint` and :meth:`_load_lm` as :attr:`lm`."""

    _fingerprint: str | None = None
    _lm: Any = None

    def _compute_fingerprint(self) -> str:
        raise NotImplementedError

    def _load_lm(self) -> Any:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """Hex sha256 the result store keys this checkpoint's runs by."""
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        return self._lm is not None

    @property
    def lm(self) -> Any:
        """The lm-eval ``LM`` object, loaded on first access and reused afterwards."""
        if self._lm is None:
            self._lm = self._load_lm()
        return self._lm
