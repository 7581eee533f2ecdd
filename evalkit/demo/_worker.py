"""One demo training job in its own interpreter: ``python -m evalkit.demo._worker JOB.pt``.

:func:`evalkit.demo.checkpoints.build_checkpoints` starts one worker for the second fine-tune, so that the
two train side by side on two cores (the first trains in the calling process), and one for the second half
of every base batch (``kind: base_part``).
A fresh interpreter rather than ``multiprocessing``: spawned multiprocessing children re-import the
caller's ``__main__``, so a user's script that calls ``run_demo()`` without an
``if __name__ == "__main__":`` guard would start the whole demo again in every child. The job file
(written by the parent into its private training folder) holds only tensors, numbers and strings,
and is read with ``weights_only=True``; the result is ``JOB.pt.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _exit_when_orphaned(parent: int, interval: float = 1.0) -> None:
    """Stop this worker once its parent is gone (a ``kill`` skips the parent's clean-up of its workers).

    Without it, killing ``evalkit demo`` left its workers training for minutes on cores nobody used.
    """
    import os
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="evalkit-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    import os

    # the parent's pid as it started us: if it died before this line, getppid() is already another process
    _exit_when_orphaned(int(os.environ.get("EVALKIT_DEMO_PARENT", os.getppid())))
    import torch

    job_path = Path(argv[0])
    job = torch.load(job_path, weights_only=True)
    kind = job.pop("kind")
    result = _fine_tune(job) if kind == "fine_tune" else _train_base_part(job)
    Path(f"{job_path}.json").write_text(json.dumps(result), encoding="utf-8")
    return 0


def _fine_tune(job: dict) -> dict:
    from .checkpoints import _fine_tune
    from .train import Schedule

    job["schedule"] = Schedule(**job["schedule"])
    job["out_dir"] = Path(job["out_dir"])
    return _fine_tune(**job)


def _train_base_part(job: dict) -> dict:
    """One part of every base batch (``rank`` > 0); the process with rank 0 saves the model."""
    from transformers import AutoModelForCausalLM

    from ..progress import quiet_third_party
    from .exchange import GradientExchange
    from .train import Schedule, train, training_threads

    with quiet_third_party(), training_threads(job["threads"]):
        model = AutoModelForCausalLM.from_pretrained(job["init"])
        exchange = GradientExchange(job["folder"], job["rank"], job["world"], job["size"])
        losses = train(
            model, job["sources"], Schedule(**job["schedule"]), seed=job["seed"], parts=job["world"], exchange=exchange
        )
    return {"steps": len(losses)}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
