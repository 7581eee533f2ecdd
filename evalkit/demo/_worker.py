"""One demo fine-tune in its own interpreter: ``python -m evalkit.demo._worker JOB.pt``.

:func:`evalkit.demo.checkpoints.build_checkpoints` starts one worker per fine-tune so that the two
train side by side on two cores. A fresh interpreter rather than ``multiprocessing``: spawned
multiprocessing children re-import the caller's ``__main__``, so a user's script that calls
``run_demo()`` without an ``if __name__ == "__main__":`` guard would start the whole demo again in
every child. The job file (written by the parent into its private training folder) holds only
tensors, numbers and strings, and is read with ``weights_only=True``; the result is ``JOB.pt.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import torch

    from .checkpoints import _fine_tune
    from .train import Schedule

    job_path = Path(argv[0])
    job = torch.load(job_path, weights_only=True)
    job["schedule"] = Schedule(**job["schedule"])
    job["out_dir"] = Path(job["out_dir"])
    result = _fine_tune(**job)
    Path(f"{job_path}.json").write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
