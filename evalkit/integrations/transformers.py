"""``EvalkitCallback``: watch learning and forgetting while a ``transformers.Trainer`` trains.

Add it to any ``Trainer`` (TRL's ``SFTTrainer`` is one)::

    from evalkit.integrations.transformers import EvalkitCallback

    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                      callbacks=[EvalkitCallback(["voc_sample", "mmlu"], policy="policy.yaml", limit=200)])
    trainer.train()

At each save (or every N steps) the model being trained is evaluated in memory on the tasks (the
domain and the general axis) through :func:`evalkit.evaluate`; the results are stored keyed by run
and step, and, at a save, under the saved folder's fingerprint too, so that a later
``evalkit compare base run/checkpoint-*`` evaluates nothing again; the new step is compared with the
baseline once (that comparison is kept, so a save costs the same at step 10 as at step 1000); each
task's primary metric, its interval, its change against the baseline and the gate status are logged
through ``Trainer.log`` under the Trainer's evaluation prefix (``eval/evalkit/...`` in TensorBoard and
W&B), the baseline at step 0; the comparison of every step so far is written to ``out`` with its
trajectory report every ``report_every`` evaluations and when training ends; and when a ``policy``
gate fails for the latest step, training stops (``control.should_training_stop``), the report is
written at once and says so. The baseline (the model when training begins, unless a result or spec is
given) is evaluated once.

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
from ._model_evaluations import ModelEvaluations
from ._step_reports import StepReports, baseline_metrics, step_metrics

__all__ = ["EvalkitCallback"]

log = logging.getLogger(__name__)
_MAX_FRAMES = 8  # how far up the call stack the Trainer that calls the callback is looked for


class EvalkitCallback(ModelEvaluations, StepReports, TrainerCallback):
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
    report_every : int, default 10
        Rewrite the report folder after every ``report_every``-th evaluation (and always when training
        ends or a gate stops it). Each evaluation's own comparison with the baseline is computed once,
        whatever this is; the report compares every step so far, so it costs more the longer the run:
        rewriting it at every save made a save's cost grow with the number of saves before it.
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
    step_comparisons : dict of label to Comparison
        Each evaluated step against the baseline (gated with ``policy``), computed once.
    comparison : Comparison or None
        Every step so far against the baseline, as last written to ``out`` (after every
        ``report_every``-th evaluation and at the end of training).
    stop_reason : str or None
        Why training was stopped, when a gate failed.
    report_dir : Path or None
        Where the report folder goes (known once training begins).
    """

    def __init__(
        self,
        tasks: Any,
        *,
        baseline: Any = None,
        policy: Any = None,
        every: str | int = "save",
        limit: int | None = None,
        sample_seed: int | None = DEFAULT_SAMPLE_SEED,
        out: str | os.PathLike | None = None,
        report_every: int = 10,
        store: Any = None,
        tokenizer: Any = None,
        trainer: Any = None,
        verbose: bool = False,
        **options: Any,
    ):
        from .. import _validate, api, compare_run
        from ..store import ResultStore

        _validate.flag(verbose, param="verbose")
        if out is not None:
            _validate.path(out, param="out")
        if store is not None and not isinstance(store, ResultStore):
            _validate.path(store, param="store")
        if every != "save" and not _positive_int(every):
            raise UsageError(f"every must be 'save' or a positive number of steps, got {every!r}.", param="every")
        if not _positive_int(report_every):
            raise UsageError(
                f"report_every must be a positive number of evaluations, got {report_every!r}.", param="report_every"
            )
        # bad task names, limits, seeds and a policy that does not fit the tasks fail here, before training starts
        plan = compare_run.prepare_tasks(tasks, policy=policy, limit=limit, sample_seed=sample_seed)
        self.tasks, self.policy = plan.task_configs, plan.policy
        self.every, self.out, self.store, self.trainer, self.verbose = every, out, store, trainer, verbose
        self.report_every = report_every
        self.tokenizer = tokenizer
        self.options = options
        api.load_options(**options)  # unknown options fail now too
        self._evaluators = compare_run.with_evaluators(plan).evaluators  # and bad task options or missing task data
        self._baseline_input = baseline
        self.results: list = []
        self.step_comparisons: dict[str, Any] = {}
        self.comparison: Any = None  # the latest Comparison, once a save was evaluated
        self.stop_reason: str | None = None
        self.report_dir: Path | None = Path(out) if out is not None else None
        self._stopped_at: dict[str, Any] | None = None
        self._state = None  # the Trainer's state (its log history holds the training loss)
        self._reported = 0  # how many results the report folder holds
        self._steps_done: set[int] = set()  # on every process, so all reach the stop broadcast equally often

    # ------------------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        _refuse_sharded_models(args)
        if self._tokenizer(kwargs) is None:  # now, not at the first evaluation after training has started
            raise UsageError(
                "EvalkitCallback needs the tokenizer: pass EvalkitCallback(..., tokenizer=tokenizer) "
                "or Trainer(..., processing_class=tokenizer).",
                param="tokenizer",
            )
        self.trainer = self.trainer or _calling_trainer()
        self.report_dir = self.report_dir or Path(args.output_dir) / "evalkit"
        self._state = state
        if self.trainer is None:
            log.warning(
                "evalkit: the Trainer was not found; metrics go to trainer_state.json's log history only. "
                "Pass EvalkitCallback(..., trainer=trainer) to log them to TensorBoard/W&B as well."
            )
        if self.every == "save" and str(getattr(args, "save_strategy", "")).endswith("no"):
            log.warning(
                "evalkit: save_strategy is 'no', so EvalkitCallback(every='save') never evaluates; use every=N steps."
            )
        if not self.results and state.is_world_process_zero:
            baseline = self._baseline(
                kwargs["model"], self._tokenizer(kwargs), run=self._run_name(args), step=int(state.global_step)
            )
            self.results.append(baseline)
            self._log(state, baseline_metrics(baseline), step=0)

    def on_save(self, args, state, control, **kwargs):
        if self.every == "save":
            self._evaluate_step(args, state, control, kwargs)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.every != "save" and state.global_step % self.every == 0:
            self._evaluate_step(args, state, control, kwargs)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and len(self.results) > max(self._reported, 1):
            self._write_report()
        return control

    # ------------------------------------------------------------------------------ the work
    def _run_name(self, args) -> str:
        return Path(str(getattr(args, "run_name", None) or args.output_dir)).name or "run"

    def _tokenizer(self, kwargs):
        """The tokenizer given to the callback, else the Trainer's ``processing_class`` (``tokenizer`` before 4.46)."""
        return self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")

    def _evaluate_step(self, args, state, control, kwargs) -> None:
        step = int(state.global_step)
        if step in self._steps_done:
            return  # already evaluated at this step
        self._steps_done.add(step)
        if state.is_world_process_zero:
            run = self._run_name(args)
            result = self._evaluate_model(
                kwargs["model"], self._tokenizer(kwargs), label=f"{run}.step{step}", run=run, step=step
            )
            self.results.append(result)
            self._compare_step(result)
            self._log(state, self.metrics_for(result.checkpoint.label), step=step)
            self._check_gates(result)
            self._record_saved_folder(args, state, result)
            if self.stop_reason or (len(self.results) - 2) % self.report_every == 0:  # the 1st, then every Nth
                self._write_report()
        self.stop_reason = _from_main_process(self.stop_reason)
        if self.stop_reason:
            control.should_training_stop = True

    def metrics_for(self, label: str) -> dict[str, float]:
        """What is logged for the step ``label``, under the Trainer's evaluation prefix (``eval/`` in TensorBoard
        and W&B): each task's primary metric ``eval_evalkit/TASK.METRIC`` with its interval (``_ci_low``,
        ``_ci_high``) and its change against the baseline with that change's interval (``_delta``,
        ``_delta_ci_low``, ``_delta_ci_high``); with a policy, ``eval_evalkit/gate_passed`` (1 or 0) and
        ``eval_evalkit/gate_failures`` (the number of failed checks)."""
        return step_metrics(self.step_comparisons.get(label), label)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _refuse_sharded_models(args) -> None:
    """The main process evaluates alone: a model sharded across processes is not whole there, and gathering
    it would need the other processes, which wait at the stop broadcast (a deadlock)."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if getattr(args, "fsdp", None) or is_deepspeed_zero3_enabled():
        raise UsageError(
            "EvalkitCallback evaluates the model on the main process alone, so it needs the whole "
            "model there (DDP, one process); with FSDP or DeepSpeed ZeRO-3 the weights are sharded: "
            "evaluate the saved checkpoints instead (evalkit compare run/checkpoint-*)."
        )


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
