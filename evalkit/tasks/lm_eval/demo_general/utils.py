"""Loader for the demo_general lm-eval task: the committed JSONL beside evalkit's shipped tasks.

``custom_dataset`` rather than ``dataset_kwargs.data_files`` because lm-eval hands relative
``data_files`` to ``datasets.load_dataset``, which resolves them against the working directory.
"""

from pathlib import Path

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "demo_general" / "test.jsonl"


def load(**_metadata):
    """A ``DatasetDict`` with one ``test`` split (lm-eval passes the task metadata as keywords)."""
    import json

    import datasets

    rows = [json.loads(line) for line in DATA_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
