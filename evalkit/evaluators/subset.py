"""Which samples a limited evaluation uses: the first ``limit``, or ``limit`` drawn with a seed.

Every evaluator with a ``limit`` option (``voc``, ``lm_eval``) picks its samples here, so a seeded
subset is chosen the same way everywhere. The draw must be identical at every training step, in every
process and after library upgrades (stored results stay paired), so it is not taken from a random
generator, whose stream numpy and Python may change between releases: each position ``i`` among ``n``
is ranked by the SHA-256 of ``"SEED:i"`` and the ``size`` lowest-ranked positions are kept, in their
original order. A larger ``size`` with the same seed keeps every sample of a smaller one.
"""

from __future__ import annotations

import hashlib

__all__ = ["subset_positions"]


def subset_positions(n: int, size: int | None, seed: int | None) -> list[int]:
    """Positions (ascending) of the samples evaluated among ``n``.

    Parameters
    ----------
    n : int
        Number of samples the task has.
    size : int or None
        How many to evaluate; None (or ``size >= n``): all of them.
    seed : int or None
        None: the first ``size`` samples. An integer: ``size`` samples drawn with this seed,
        the same ones in every run.

    Returns
    -------
    list of int

    Examples
    --------
    >>> subset_positions(10, 3, None)
    [0, 1, 2]
    >>> subset_positions(10, 3, seed=0)
    [4, 7, 9]
    >>> subset_positions(10, 3, seed=0) == subset_positions(10, 3, seed=0) != subset_positions(10, 3, seed=1)
    True
    >>> set(subset_positions(10, 3, seed=0)) <= set(subset_positions(10, 6, seed=0))
    True
    >>> subset_positions(4, None, seed=0), subset_positions(4, 9, seed=0)
    ([0, 1, 2, 3], [0, 1, 2, 3])
    """
    if size is None or size >= n:
        return list(range(n))
    if seed is None:
        return list(range(size))
    return sorted(sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())[:size])
