"""The parts of the ``lm_eval`` evaluator: task loading, per-kind strategies, request scheduling, metric specs.

``evalkit.general.evaluator.LmEvalEvaluator`` is the registered evaluator; it combines

- :mod:`.loading`: the lm-eval ``TaskManager`` for a task, the loaded and configured tasks;
- :mod:`.kinds`: what differs between MMLU, letter-answer MMLU, IFEval and any other lm-eval task
  (data folders, sample ids, record fields, breakdowns, settings);
- :mod:`.requests`: the docs with their lm-eval ``Instance`` objects, built once, sent to the model in a
  global length order with tokenisation done once per distinct string;
- :mod:`.scoring`: answered docs -> per-sample records (filters, ``process_results``, the ``random`` replay);
- :mod:`.aggregation`: lm-eval's task and group aggregation over records, the bootstrap resampling hook;
- :mod:`.settings`: the task file options, the store key (``config_hash``) and the recorded settings;
- :mod:`.specs`: the metric declarations, read from lm-eval's own task and group configs.
"""
