"""How the Trainer callback evaluates: the model in memory, the baseline, and the store keys of saved folders.

Results of a model whose weights are a saved folder's (the base as loaded, a ``checkpoint-N`` the Trainer
just wrote) are stored under that folder's fingerprint too, so a later ``evalkit compare`` of the folders
evaluates nothing again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..parallel import Ranks
from ..progress import quiet_third_party

log = logging.getLogger("evalkit.integrations.transformers")  # the callback's logger: users filter on that name
_BASELINE_LABEL = "base"


class ModelEvaluations:
    """The evaluations of ``EvalkitCallback``, which sets the attributes declared here in its ``__init__``."""

    tasks: list
    store: Any
    options: dict[str, Any]
    verbose: bool
    _evaluators: list
    _baseline_input: Any

    def _evaluate_model(self, model, tokenizer, *, label: str, run: str | None, step: int | None):
        from .. import api
        from ..checkpoints.memory import InMemoryCheckpoint

        checkpoint = InMemoryCheckpoint(
            model,
            tokenizer=_tokenizer_of(tokenizer),
            label=label,
            run=run,
            step=step,
            options=api.load_options(**self.options),
        )
        with quiet_third_party(self.verbose):
            return api.evaluate(checkpoint, self.tasks, store=self.store, ranks=Ranks())  # this process alone

    def _baseline(self, model, tokenizer, *, run: str, step: int):
        """The given baseline, or ``model`` as it is when training begins (``model`` and ``tokenizer``)."""
        from .. import api
        from .._compare import load_results_files
        from ..records import EvalResult

        given = self._baseline_input
        if given is None:
            # checked before evaluating: lm-eval may adjust the tokenizer it is handed (padding side, pad token)
            source = _unchanged_source_folder(model, _tokenizer_of(tokenizer))
            result = self._evaluate_model(model, tokenizer, label=_BASELINE_LABEL, run=run, step=step)
            if source is not None:  # the base as loaded: a later `evalkit compare base=FOLDER ...` reuses it too
                self._store_under(result, source)
            return result
        if isinstance(given, EvalResult):
            return given
        if isinstance(given, (str, os.PathLike)) and str(given).endswith(".json"):
            (result,) = load_results_files([os.fspath(given)])
            return result
        with quiet_third_party(self.verbose):
            return api.evaluate(
                given, self.tasks, store=self.store, label=_BASELINE_LABEL, ranks=Ranks(), **self.options
            )

    def _record_saved_folder(self, args, state, result) -> None:
        """At a save, store the step's results under the saved folder's fingerprint too, and write the step's
        logged metrics into that folder's ``trainer_state.json`` (the Trainer wrote it before this callback
        ran). Called after the Trainer saved the weights this step evaluated, so they are the same weights:
        a later ``evalkit compare run/checkpoint-N`` finds its results in the store instead of evaluating."""
        from ..checkpoints.spec import hf_dir_problems

        folder = Path(args.output_dir) / f"checkpoint-{int(state.global_step)}"
        if not folder.is_dir() or (hf_dir_problems(folder) and not (folder / "adapter_config.json").is_file()):
            return  # no save at this step (every=N), or a folder evalkit could not load anyway
        if (folder / "trainer_state.json").is_file():
            state.save_to_json(str(folder / "trainer_state.json"))
        self._store_under(result, folder)

    def _store_under(self, result, folder: Path) -> None:
        try:
            _store_under_folder(result, folder, self.tasks, self._evaluators, self.store, self.options)
        except UsageError as exc:  # the folder is incomplete for evalkit (e.g. no tokenizer saved): compare later
            log.debug("evalkit: results not stored for %s: %s", folder, exc)


def _unchanged_source_folder(model: Any, tokenizer: Any) -> Path | None:
    """The local folder ``model`` was loaded from, when the model in memory is exactly that folder's: every
    saved tensor equal (dtype included; tied weights may be unsaved), the config's dtype the weights' dtype
    (so evalkit's default ``dtype=auto`` loads the same numbers), and the tokenizer's files the folder's.
    None otherwise (a PEFT wrapper, weights changed or cast after loading, a hub id, no safetensors)."""
    import torch
    from safetensors import safe_open

    folder = Path(str(getattr(model, "name_or_path", "") or ""))
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    state = model.state_dict() if files and hasattr(model, "state_dict") else {}
    if not state:
        return None
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    configured = getattr(getattr(model, "config", None), "dtype", None)
    if len(dtypes) != 1 or (
        configured is not None
        and str(configured).replace("torch.", "") != str(next(iter(dtypes))).replace("torch.", "")
    ):
        return None
    saved: set[str] = set()
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                mine = state.get(name)
                stored = handle.get_tensor(name)
                if mine is None or stored.dtype != mine.dtype or not torch.equal(stored, mine.detach().cpu()):
                    return None
                saved.add(name)
    pointers = {state[name].data_ptr() for name in saved}
    if any(state[name].data_ptr() not in pointers for name in set(state) - saved):
        return None
    from transformers import AutoTokenizer

    same_tokenizer = _tokenizer_identity(AutoTokenizer.from_pretrained(folder)) == _tokenizer_identity(tokenizer)
    return folder if same_tokenizer else None


def _tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's files as ``save_pretrained`` writes them (a re-save may reorder tokenizer_config.json's
    keys, so both sides are re-saved), less tokenizer.json's truncation and padding state: calling the
    tokenizer with ``truncation=``/``padding=`` (tokenising a training set) rewrites them, and every later
    call sets its own."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="evalkit-tokenizer-") as folder:
        tokenizer.save_pretrained(folder)
        files = {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}
    if "tokenizer.json" in files:
        data = json.loads(files["tokenizer.json"])
        for key in ("truncation", "padding"):
            data.pop(key, None)
        files["tokenizer.json"] = json.dumps(data, sort_keys=True).encode()
    return files


def _store_under_folder(
    result: Any, folder: Path, tasks: list, evaluators: list, store: Any, options: dict[str, Any]
) -> None:
    """Copy ``result``'s runs to the keys the saved ``folder`` has (its file fingerprint, same tasks and
    load options), unless the store has them already."""
    from .. import api
    from ..checkpoints import Checkpoint
    from ..run import run_keys

    saved = Checkpoint.from_string(str(folder), api.load_options(**options))
    with api.open_store(store) as opened:
        for task, key in zip(tasks, run_keys(saved, tasks, evaluators)):
            task_result = result.tasks[task.name]
            if opened.completed_result(key) is not None:
                continue
            opened.start_run(key, saved.info.to_dict())
            opened.add_samples(key, list(task_result.samples))
            opened.finish_run(key, task_result)


def _tokenizer_of(processing_class: Any) -> Any:
    """The tokenizer inside a processor (multimodal trainers pass a processor as processing_class)."""
    return getattr(processing_class, "tokenizer", None) or processing_class
