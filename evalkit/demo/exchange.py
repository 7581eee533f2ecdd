"""Sum gradients across the processes that train one demo model together (data parallel on CPU cores).

Why not ``torch.distributed.all_reduce``: over gloo's TCP loopback a 3 MB gradient took ~36 ms a step
(measured on the 2-core machine), a third of the step itself. Here each process writes its flattened
gradients into its row of a file-backed shared-memory buffer (``/dev/shm`` when there is one), waits
at a gloo barrier (a one-element all-reduce, ~1 ms), and every process adds the rows in rank order:
the same float additions, in the same order, as one process accumulating the micro-batches'
gradients with ``backward()``, so the weights are identical bit for bit to single-process training
(``tests/test_demo.py``). Two slots alternate between steps, so one barrier a step is enough: a
process can only overwrite a slot after every process has passed the next step's barrier, that is,
after it has read the slot.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["GradientExchange", "exchange_folder"]


def exchange_folder() -> Path:
    """A fresh private folder for an exchange's files, in shared memory when the system has it."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="evalkit-demo-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))


class GradientExchange:
    """Process ``rank`` of ``world`` training a model with ``size`` parameters; files live in ``folder``."""

    def __init__(self, folder: str | Path, rank: int, world: int, size: int, timeout_s: float = 600.0):
        import torch
        import torch.distributed as dist

        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        self.rank, self.world, self._step = rank, world, 0
        row = size + 1  # the gradients, then this process's loss
        path = Path(folder) / "gradients.bin"
        self._rows = torch.from_file(str(path), shared=True, size=2 * world * row, dtype=torch.float32)
        self._rows = self._rows.view(2, world, row)
        store = dist.FileStore(str(Path(folder) / "rendezvous"), world)
        self._group = dist.ProcessGroupGloo(store, rank, world, datetime.timedelta(seconds=timeout_s))

    def sum_gradients(self, parameters: Iterable, loss: float) -> list[float]:
        """Replace every parameter's gradient by the sum over processes; return each process's loss."""
        import torch

        params = list(parameters)
        slot = self._rows[self._step % 2]
        self._step += 1
        mine = slot[self.rank]
        offset = 0
        for p in params:
            n = p.numel()
            mine[offset : offset + n].copy_(p.grad.reshape(-1) if p.grad is not None else torch.zeros(n))
            offset += n
        mine[offset] = loss
        self._barrier()
        total = slot[0].clone()
        for other in range(1, self.world):
            total += slot[other]
        offset = 0
        for p in params:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.copy_(total[offset : offset + n].view_as(p.grad))
            offset += n
        return [float(slot[r, offset]) for r in range(self.world)]

    def _barrier(self) -> None:
        import torch

        self._group.allreduce([torch.zeros(1)]).wait()
