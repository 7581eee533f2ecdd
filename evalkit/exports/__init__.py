"""A comparison or a result handed to other tools, each imported only when used: pandas frames
(:mod:`.pandas`), MLflow and Weights & Biases runs (:mod:`.mlflow`, :mod:`.wandb`, their shared metric
names in :mod:`._tracking`) and Hugging Face model cards (:mod:`.hub`); :mod:`.extras` names the extra
that installs a missing library. :class:`evalkit.Comparison` and :class:`evalkit.EvalResult` call them
(``to_pandas``, ``log_to_mlflow``, ``log_to_wandb``, ``to_model_card``); they read comparison dicts and
records only, so they sit below the Comparison. Training-framework integrations are in
:mod:`evalkit.integrations`.
"""
