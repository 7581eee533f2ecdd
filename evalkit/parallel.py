"""Data parallelism across processes, with the result store as the only meeting point.

Under ``torchrun --nproc_per_node N -m evalkit ...`` or ``accelerate launch --num_processes N -m evalkit ...``
every process (rank) loads its own copy of the model (``cuda:LOCAL_RANK`` on GPUs) and evaluates every
N-th pending sample of each task, in the evaluator's sample order, committing records to the shared
store as usual. Rank 0 then waits until every sample of the task is in the store, computes the corpus
result from all of them and marks the run complete; the other ranks wait for that and read the
result, so every rank returns the same results while only rank 0 writes files.

Nothing here needs torch.distributed: the SQLite store (WAL, one writer at a time) already lets several
processes add samples to one run, and a resumed run skips what any rank finished. lm-eval's own
data parallelism lives in its ``simple_evaluate`` loop, which evalkit's evaluators do not use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import UsageError

__all__ = ["Ranks", "current_ranks", "ShardView", "wait_until"]

T = TypeVar("T")

#: Seconds between two looks at the store while waiting for other ranks.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Ranks:
    """This process's place among the launched processes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Examples
    --------
    >>> ranks = Ranks(rank=1, world_size=2, local_rank=1)
    >>> ranks.main, ranks.parallel
    (False, True)
    >>> sorted(ranks.owned(["a", "b", "c", "d", "e"]))
    ['b', 'd']
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Ranks":
        """Read the variables torchrun and accelerate set; a single process when they are absent."""
        env = os.environ if environ is None else environ
        values = {}
        for field, name, default in (
            ("rank", "RANK", 0),
            ("world_size", "WORLD_SIZE", 1),
            ("local_rank", "LOCAL_RANK", 0),
        ):
            raw = env.get(name, "") or str(default)
            try:
                values[field] = int(raw)
            except ValueError:
                raise UsageError(f"environment variable {name} must be an integer, got {raw!r}.") from None
        ranks = cls(**values)
        if ranks.world_size < 1 or not 0 <= ranks.rank < ranks.world_size:
            raise UsageError(
                f"RANK must be in [0, WORLD_SIZE) with WORLD_SIZE >= 1, got RANK={ranks.rank} "
                f"WORLD_SIZE={ranks.world_size}."
            )
        return ranks

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def owned(self, sample_ids: list[str]) -> set[str]:
        """The samples this rank evaluates: every ``world_size``-th, starting at ``rank`` (balanced, stable)."""
        return set(sample_ids[self.rank :: self.world_size])


def current_ranks() -> Ranks:
    """The ranks of this process, from the environment."""
    return Ranks.from_env()


class ShardView(Mapping):
    """The stored samples, plus every sample another rank owns, as "done" for an evaluator's ``run``.

    Evaluators skip samples that are in ``done``; presenting the other ranks' samples as done makes an
    unchanged evaluator evaluate only this rank's share. Their values are ``None``: the list ``run``
    returns is not used on a parallel run (rank 0 aggregates the records read back from the store).

    Examples
    --------
    >>> view = ShardView({"a": "stored"}, owned={"a", "c"})
    >>> ["a" in view, "b" in view, "c" in view], view["a"], view["b"]
    ([True, True, False], 'stored', None)
    """

    def __init__(self, stored: Mapping[str, Any], owned: set[str]):
        self._stored, self._owned = stored, owned

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._stored or sample_id not in self._owned

    def __getitem__(self, sample_id: str) -> Any:
        if sample_id in self._stored:
            return self._stored[sample_id]
        if sample_id in self._owned:
            raise KeyError(sample_id)
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)


def wait_until(
    ready: Callable[[], T | None],
    describe: Callable[[], str],
    *,
    timeout: float | None = None,
    poll: float = POLL_SECONDS,
) -> T:
    """Poll ``ready()`` until it returns something other than None; ``describe()`` says what is awaited.

    A rank that fails ends the whole launch (torchrun and accelerate stop the other processes), so the
    default is to wait as long as the slowest rank needs; ``timeout`` is for tests.
    """
    from .progress import bar

    deadline = None if timeout is None else time.monotonic() + timeout
    with bar(None, "waiting for other ranks", unit="poll") as progress:
        while True:
            value = ready()
            if value is not None:
                return value
            if deadline is not None and time.monotonic() > deadline:
                raise UsageError(f"gave up after {timeout:g} s waiting for other ranks: {describe()}.")
            progress.set_postfix_str(describe(), refresh=False)
            progress.update(1)
            time.sleep(poll)
