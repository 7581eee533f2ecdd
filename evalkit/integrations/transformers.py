"""``EvalkitCallback``: watch learning and forgetting while a ``transformers.Trainer`` trains.

Add it to any ``Trainer`` (TRL's ``SFTTrainer`` is one)::

    from evalkit.integrations.transformers import EvalkitCallback

    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                      callbacks=[EvalkitCallback(["voc_sample", "mmlu"], policy="policy.yaml", limit=200)])
    trainer.train()

At each save (or every N steps) the model being trained is evaluated in memory on the tasks (the
domain and the general axis) through :func:`evalkit.evaluate`; the results are stored keyed by run
and step; each task's primary metric and its change against the baseline are logged through
``Trainer.log`` (so they reach TensorBoard, W&B, ... like the loss); the comparison of every step so far
against the baseline is written to ``out`` with its trajectory report; and when a ``policy`` gate fails
for the latest step, training stops (``control.should_training_stop``) with the reason logged.
The baseline (the model when training begins, unless a result or spec is given) is evaluated once.

Under a multi-process launch (``torchrun``, ``accelerate launch``) the main process evaluates, alone and
without collective operations; its decision to stop is broadcast after each evaluation, so the others
wait for it there (for the baseline, at the first gradient synchronisation) and every process stops at
the same step. The wait counts against the process group's timeout (``TrainingArguments.ddp_timeout``,
30 minutes by default): raise it above the time one evaluation takes.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..api import DEFAULT_SAMPLE_SEED
from ..errors import UsageError
from ..parallel import Ranks
from ..progress import quiet_third_party
from ..run import build_evaluators

__all__ = ["EvalkitCallback"]

log = logging.getLogger(__name__)
_BASELINE_LABEL = "base"
_MAX_FRAMES = 8  # how far up the call stack the Trainer that calls the callback is looked for


class EvalkitCallback(TrainerCallback):
    """Evaluate the model being trained on both axes at each save or every N steps.

    Parameters
    ----------
    tasks : task names, task-file paths or TaskConfig objects (as for :func:`evalkit.evaluate`)
        Normally one domain task and one general task.
    baseline : EvalResult, results.json path, checkpoint spec, or None
        What each step is compared with. None: the model as it is when training begins (step 0),
        evaluated once.
    policy : policy YAML path, mapping or Policy, optional
        Gates checked after every evaluation; a failed gate on the latest step stops training.
    every : "save" or int
        Evaluate after every checkpoint save (the evaluated weights are the saved ones), or every
        N optimizer steps.
    limit : int, optional
        Evaluate only ``limit`` samples of each task (per subtask for lm-eval groups such as MMLU),
        drawn at random with ``sample_seed``: the same samples at every step and in every process,
        so steps are paired.
    sample_seed : int or None, default 0 (``evalkit.api.DEFAULT_SAMPLE_SEED``, as for :func:`evalkit.evaluate`)
        The seed of that subset; None takes each task's first ``limit`` samples instead.
    out : path, optional
        Where the comparison and trajectory report go (default: ``OUTPUT_DIR/evalkit``).
    store : path, postgresql:// URL or ResultStore, optional
        Result store (default: evalkit's default store).
    tokenizer : tokenizer or processor, optional
        The model's tokenizer, for a Trainer built without ``processing_class=tokenizer`` (else that
        one is used). Without either, training is refused when it begins, not at the first evaluation.
    trainer : Trainer, optional
        The trainer whose ``log`` reaches TensorBoard/W&B. Found automatically when training starts
        (callback hooks are not given the trainer); pass it if your trainer is wrapped unusually.
    verbose : bool
        Let lm-eval, transformers and datasets print their own progress bars and warnings during
        evaluations (off by default, as on the command line without ``--verbose``).
    **options
        Load options for :func:`evalkit.evaluate` (``batch_size``, ``max_length``, ``chat_template``, ...).

    Attributes
    ----------
    results : list of EvalResult
        The baseline first, then one per evaluated step.
    comparison : Comparison or None
        The latest comparison of every step against the baseline.
    stop_reason : str or None
        Why training was stopped, when a gate failed.
    """

    def __init__(self, tasks: Any, *, baseline: Any = None, policy: Any = None, every: str | int = "save",
                 limit: int | None = None, sample_seed: int | None = DEFAULT_SAMPLE_SEED,
                 out: str | os.PathLike | None = None, store: Any = None, tokenizer: Any = None,
                 trainer: Any = None, verbose: bool = False, **options: Any):
        from .. import _validate, api
        from ..gate import as_policy
        from ..store import ResultStore

        _validate.flag(verbose, param="verbose")
        if out is not None:
            _validate.path(out, param="out")
        if store is not None and not isinstance(store, ResultStore):
            _validate.path(store, param="store")
        if every != "save" and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise UsageError(f"every must be 'save' or a positive number of steps, got {every!r}.", param="every")
        # bad task names, limits and seeds fail here, before training starts
        self.tasks = api.with_limit(api.resolve(tasks), limit, sample_seed)
        self.policy = as_policy(policy) if policy is not None else None
        if self.policy is not None:  # a gate on a task or metric never evaluated fails now, not at the first save
            from ..gate._preflight import check_policy_fits_tasks

            check_policy_fits_tasks(self.policy, self.tasks)
        self.every, self.out, self.store, self.trainer, self.verbose = every, out, store, trainer, verbose
        self.tokenizer = tokenizer
        self.options = options
        api.load_options(**options)  # unknown options fail now too
        build_evaluators(self.tasks)  # and bad task options or missing task data, as the CLI checks them
        self._baseline_input = baseline
        self.results: list = []
        self.comparison: Any = None  # the latest Comparison, once a save was evaluated
        self.stop_reason: str | None = None
        self._steps_done: set[int] = set()  # on every process, so all reach the stop broadcast equally often

    # ------------------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        _refuse_sharded_models(args)
        if self._tokenizer(kwargs) is None:  # now, not at the first evaluation after training has started
            raise UsageError("EvalkitCallback needs the tokenizer: pass EvalkitCallback(..., tokenizer=tokenizer) "
                             "or Trainer(..., processing_class=tokenizer).", param="tokenizer")
        self.trainer = self.trainer or _calling_trainer()
        if self.trainer is None:
            log.warning("evalkit: the Trainer was not found; metrics go to trainer_state.json's log history only. "
                        "Pass EvalkitCallback(..., trainer=trainer) to log them to TensorBoard/W&B as well.")
        if self.every == "save" and str(getattr(args, "save_strategy", "")).endswith("no"):
            log.warning("evalkit: save_strategy is 'no', so EvalkitCallback(every='save') never evaluates; "
                        "use every=N steps.")
        if not self.results and state.is_world_process_zero:
            self.results.append(self._baseline(args, state, kwargs))

    def on_save(self, args, state, control, **kwargs):
        if self.every == "save":
            self._evaluate_step(args, state, control, kwargs)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.every != "save" and state.global_step % self.every == 0:
            self._evaluate_step(args, state, control, kwargs)
        return control

    # ------------------------------------------------------------------------------ the work
    def _run_name(self, args) -> str:
        return Path(str(getattr(args, "run_name", None) or args.output_dir)).name or "run"

    def _tokenizer(self, kwargs):
        """The tokenizer given to the callback, else the Trainer's ``processing_class`` (``tokenizer`` before 4.46)."""
        return self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")

    def _evaluate_model(self, model, tokenizer, *, label: str, run: str | None, step: int | None):
        from .. import api
        from ..checkpoints.memory import InMemoryCheckpoint

        checkpoint = InMemoryCheckpoint(model, tokenizer=_tokenizer_of(tokenizer), label=label, run=run, step=step,
                                        options=api.load_options(**self.options))
        with quiet_third_party(self.verbose):
            return api.evaluate(checkpoint, self.tasks, store=self.store, ranks=Ranks())  # this process alone

    def _baseline(self, args, state, kwargs):
        from .. import api
        from .._compare import load_results_files
        from ..records import EvalResult

        given = self._baseline_input
        if given is None:
            return self._evaluate_model(kwargs["model"], self._tokenizer(kwargs),
                                        label=_BASELINE_LABEL, run=self._run_name(args), step=int(state.global_step))
        if isinstance(given, EvalResult):
            return given
        if isinstance(given, (str, os.PathLike)) and str(given).endswith(".json"):
            (result,) = load_results_files([os.fspath(given)])
            return result
        with quiet_third_party(self.verbose):
            return api.evaluate(given, self.tasks, store=self.store, label=_BASELINE_LABEL, ranks=Ranks(),
                                **self.options)

    def _evaluate_step(self, args, state, control, kwargs) -> None:
        step = int(state.global_step)
        if step in self._steps_done:
            return  # already evaluated at this step
        self._steps_done.add(step)
        if state.is_world_process_zero:
            run = self._run_name(args)
            result = self._evaluate_model(kwargs["model"], self._tokenizer(kwargs),
                                          label=f"{run}.step{step}", run=run, step=step)
            self.results.append(result)
            self._compare_and_report(args, result)
            self._log(state, result)
            self._check_gates(result)
        self.stop_reason = _from_main_process(self.stop_reason)
        if self.stop_reason:
            control.should_training_stop = True

    def _compare_and_report(self, args, result) -> None:
        from .. import api

        self.comparison = api.compare(*self.results, baseline=self.results[0].checkpoint.label)
        if self.policy is not None:
            self.comparison.gate(self.policy)
        self.comparison.write(Path(self.out) if self.out else Path(args.output_dir) / "evalkit")

    def metrics_for(self, label: str) -> dict[str, float]:
        """``{"evalkit/TASK.METRIC": value, "evalkit/TASK.METRIC_delta": change}`` of each task's primary metric."""
        logged: dict[str, float] = {}
        for task in self.comparison.tasks:
            try:
                row = self.comparison.metric(task, checkpoint=label)
            except KeyError:
                continue
            name = f"evalkit/{task}.{row['metric']}"
            if isinstance(row.get("value"), (int, float)):
                logged[name] = float(row["value"])
            if isinstance(row.get("delta"), (int, float)):
                logged[f"{name}_delta"] = float(row["delta"])
        return logged

    def _log(self, state, result) -> None:
        metrics = self.metrics_for(result.checkpoint.label)
        if self.trainer is not None:
            self.trainer.log(dict(metrics))
        else:
            state.log_history.append({**metrics, "step": state.global_step})

    def _check_gates(self, result) -> None:
        """Set ``stop_reason`` when a gate fails for ``result``'s step."""
        verdict = self.comparison.verdict
        if verdict is None:
            return
        failed = [c for c in verdict.failures if c.checkpoint == result.checkpoint.label]
        if failed:
            self.stop_reason = (f"evalkit gate failed at step {result.checkpoint.step}: "
                                + "; ".join(f"{c.gate}: {c.message}" for c in failed))
            log.warning("%s; stopping training (report: %s).", self.stop_reason, self.out or "OUTPUT_DIR/evalkit")


def _refuse_sharded_models(args) -> None:
    """The main process evaluates alone: a model sharded across processes is not whole there, and gathering
    it would need the other processes, which wait at the stop broadcast (a deadlock)."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if getattr(args, "fsdp", None) or is_deepspeed_zero3_enabled():
        raise UsageError("EvalkitCallback evaluates the model on the main process alone, so it needs the whole "
                         "model there (DDP, one process); with FSDP or DeepSpeed ZeRO-3 the weights are sharded: "
                         "evaluate the saved checkpoints instead (evalkit compare run/checkpoint-*).")


def _from_main_process(value: Any) -> Any:
    """``value`` as the main process has it, on every process of a distributed run (itself otherwise).

    Every process calls this at the same point; the others wait here while the main process evaluates.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def _tokenizer_of(processing_class: Any) -> Any:
    """The tokenizer inside a processor (multimodal trainers pass a processor as processing_class)."""
    return getattr(processing_class, "tokenizer", None) or processing_class


def _calling_trainer():
    """The ``transformers.Trainer`` whose callback handler is calling us (hooks are not given the trainer,
    and ``Trainer.log`` is the one path to every reporting integration)."""
    from transformers import Trainer

    frame = inspect.currentframe()
    try:
        for _ in range(_MAX_FRAMES):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return None
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, Trainer):
                return candidate
        return None
    finally:
        del frame
