"""VOC data files -> labelled examples (text, id, label path), split into test and train rows.

A data file is CSV (``.csv``, ``.tsv``), JSON lines (``.jsonl``, ``.ndjson``) or Parquet
(``.parquet``, ``.pq``). The label is either one column holding the whole path (``label_field``,
levels joined by ``sep``) or one column per level (``label_fields``, top level first). Empty
trailing levels give a shallower leaf (CFPB rows without a sub-issue). An empty level INSIDE a path (a
product with no sub-product but an issue) is a hole: with ``label_holes: skip`` (the default) the empty
level is dropped and the deeper levels move up, with a warning that counts and names the rows; with
``label_holes: refuse`` such rows are an error. Rows are numbered from 1 in file order, header not counted; the sample id is the
``id_field`` value or, without one, that row number.

Test rows are the whole ``data`` file, or its rows whose ``split_field`` equals ``test_split``;
train rows (few-shot examples and class frequencies for the head/torso/tail breakdown) come from
``train_data`` or from the rows of ``data`` whose ``split_field`` equals ``train_split``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, arg

if TYPE_CHECKING:
    import pandas as pd

    from ..taxonomy import Taxonomy

__all__ = ["VocExample", "DataSpec", "VocData", "read_table", "read_examples", "check_labels", "load_voc_data"]

_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_SHOW = 5  # how many offending rows an error lists


@dataclass(frozen=True)
class VocExample:
    """One labelled comment; ``row`` is its 1-based data row in ``source`` (for error messages)."""

    sample_id: str
    text: str
    path: tuple[str, ...]
    row: int
    source: str = ""


@dataclass(frozen=True)
class DataSpec:
    """Where the examples are and which columns hold what (the task file's data keys)."""

    data: Path
    text_field: str = "text"
    id_field: str | None = None
    label_field: str | None = None
    label_fields: tuple[str, ...] | None = None
    sep: str = " > "
    split_field: str | None = None
    test_split: str = "test"
    train_split: str = "train"
    train_data: Path | None = None
    taxonomy: Path | None = None
    label_holes: str = "skip"

    @classmethod
    def from_options(cls, o: Any, resolve_path: Any) -> DataSpec:
        """The spec of the voc task options ``o`` (``VocOptions``), its file keys resolved by ``resolve_path``."""
        return cls(
            data=resolve_path(o.data),
            text_field=o.text_field,
            id_field=o.id_field,
            label_field=o.label_field,
            label_fields=tuple(o.label_fields) if o.label_fields else None,
            sep=o.sep,
            split_field=o.split_field,
            test_split=o.test_split,
            train_split=o.train_split,
            train_data=resolve_path(o.train_data) if o.train_data else None,
            taxonomy=resolve_path(o.taxonomy) if o.taxonomy else None,
            label_holes=o.label_holes,
        )

    def check_files_exist(self, source: str, task: str) -> None:
        """Refuse a data, train_data or taxonomy file that is not there, saying how to point the task at it."""
        for key in ("data", "train_data", "taxonomy"):
            path = getattr(self, key)
            if path is not None and not path.exists():
                raise UsageError(
                    f"{source}: {key} file {path} does not exist; put it there or point the "
                    f"task at it with {arg('overrides', repr(f'{task}.{key}=PATH'))}."
                )


@dataclass
class VocData:
    """Test rows, train rows (possibly empty) and the taxonomy they were checked against."""

    test: list[VocExample]
    train: list[VocExample]
    taxonomy: "Taxonomy"

    def train_counts(self) -> dict[tuple[str, ...], int]:
        """Number of train rows per leaf path (for the head/torso/tail frequency breakdown)."""
        return dict(sorted(Counter(ex.path for ex in self.train).items()))


def _cell(value: Any) -> str:
    """A cell as a string, exactly as in the file; missing values (None, NaN) become ''.

    Ids are matched exactly (a predictions file names the id as the data has it); text, labels and
    split values are stripped where they are used.
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def read_table(path: str | Path, *, key: str = "data") -> "pd.DataFrame":
    """Read a CSV/TSV, JSON-lines or Parquet file into a DataFrame of strings ('' for missing values)."""
    import pandas as pd

    path = Path(path)
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"{path}: unsupported data file type {path.suffix!r} (key '{key}'); "
            f"use one of {', '.join(sorted(_READERS))}."
        )
    if not path.is_file():
        raise UsageError(
            f"{path}: data file not found (key '{key}'); create it or point '{key}' at it, "
            f"e.g. {arg('overrides', repr(f'TASK.{key}=PATH'))}."
        )
    try:
        if kind in ("csv", "tsv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if kind == "tsv" else ",")
        elif kind == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # parser errors differ per format; all mean "this file is not readable as X"
        raise UsageError(f"{path}: cannot be read as {kind} ({type(exc).__name__}: {exc}).") from None
    return frame.apply(lambda column: column.map(_cell)) if len(frame) else frame.astype(str)


def _require_columns(frame: "pd.DataFrame", wanted: dict[str, str], path: Path) -> None:
    for key, column in wanted.items():
        if column not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:30]))
            raise UsageError(f"{path}: column {column!r} (key '{key}') not found; the file has: {shown}.")


def _label_levels(values: list[str], sep: str, per_level: bool) -> list[str]:
    """The label's levels, stripped, empty ones included (a hole is an empty level before a named one)."""
    parts = values if per_level else values[0].split(sep.strip())
    levels = [p.strip() for p in parts]
    while levels and not levels[-1]:  # empty trailing levels: a shallower leaf, not a hole
        levels.pop()
    return levels


def _report_holes(holes: list[str], path: Path, rule: str) -> None:
    """Apply the task's ``label_holes`` rule to rows whose label path has an empty level inside it."""
    shown = _list_rows(holes[:_SHOW], len(holes))
    if rule == "refuse":
        raise UsageError(
            f"{path}: {len(holes)} row(s) have an empty level inside their label path: {shown}; "
            f"fill them in, or set label_holes: skip to drop the empty level."
        )
    from ..errors import warn

    warn(
        f"{path}: {len(holes)} row(s) have an empty level inside their label path ({shown}); the empty "
        f"level was skipped, so deeper levels moved up (label_holes: skip; set label_holes: refuse to reject them)."
    )


def _list_rows(items: list[str], total: int) -> str:
    more = f" (and {total - len(items)} more)" if total > len(items) else ""
    return "; ".join(items) + more


def read_examples(spec: DataSpec, path: Path, *, split: str | None = None, key: str = "data") -> list[VocExample]:
    """Examples of one file, keeping only rows whose ``spec.split_field`` equals ``split`` when given."""
    frame = read_table(path, key=key)
    label_columns = list(spec.label_fields) if spec.label_fields else [spec.label_field]
    wanted = {
        "text_field": spec.text_field,
        **{f"label_field{'s' if spec.label_fields else ''}": c for c in label_columns},
    }
    if spec.id_field:
        wanted["id_field"] = spec.id_field
    if split is not None:
        wanted["split_field"] = spec.split_field
    _require_columns(frame, wanted, path)
    rows = frame.to_dict("records")
    examples, unlabelled, holes, bad_names = [], [], [], []
    mark = spec.sep.strip()
    for number, row in enumerate(rows, start=1):
        if split is not None and row[spec.split_field].strip() != split:
            continue
        levels = _label_levels([row[c] for c in label_columns], spec.sep, bool(spec.label_fields))
        label = tuple(level for level in levels if level)
        if not label:
            unlabelled.append(f"row {number}")
        elif len(label) < len(levels):
            holes.append(f"row {number}: {' | '.join(levels)!r}")
        if any(mark in level for level in label):
            bad_names.append(f"row {number}: {' | '.join(label)!r}")
        sample_id = row[spec.id_field] if spec.id_field else str(number)
        examples.append(VocExample(sample_id, row[spec.text_field].strip(), label, number, str(path)))
    if unlabelled:
        raise UsageError(
            f"{path}: {len(unlabelled)} row(s) have an empty label: {_list_rows(unlabelled[:_SHOW], len(unlabelled))}."
        )
    if bad_names:
        raise UsageError(
            f"{path}: {len(bad_names)} row(s) have a label level containing the separator {mark!r} "
            f"(key 'sep'): {_list_rows(bad_names[:_SHOW], len(bad_names))}; use another 'sep'."
        )
    if holes:
        _report_holes(holes, path, spec.label_holes)
    _check_unique_ids(examples, path)
    return examples


def _check_unique_ids(examples: list[VocExample], path: Path) -> None:
    counts = Counter(ex.sample_id for ex in examples)
    repeated = [f"{sid!r} x{n}" for sid, n in counts.items() if n > 1]
    if repeated:
        raise UsageError(
            f"{path}: sample ids must be unique (key 'id_field'); repeated: "
            f"{_list_rows(repeated[:_SHOW], len(repeated))}."
        )


def check_labels(examples: list[VocExample], taxonomy: "Taxonomy", *, what: str = "taxonomy") -> None:
    """Raise a :class:`UsageError` listing the first rows whose label is not a label path of ``taxonomy``."""
    bad = [ex for ex in examples if not taxonomy.is_label(ex.path)]
    if bad:
        shown = [f"row {ex.row}: {taxonomy.sep.join(ex.path)!r}" for ex in bad[:_SHOW]]
        raise UsageError(
            f"{bad[0].source}: {len(bad)} row(s) have a label that is not in the {what}: {_list_rows(shown, len(bad))}."
        )


def load_voc_data(spec: DataSpec) -> VocData:
    """Read test and train rows, build or load the taxonomy, and check every label against it."""
    from ..taxonomy import Taxonomy, load_taxonomy

    if spec.split_field:
        test = read_examples(spec, spec.data, split=spec.test_split)
        if not test:
            raise UsageError(
                f"{spec.data}: no rows with {spec.split_field} == {spec.test_split!r} (keys 'split_field', 'test_split')."
            )
    else:
        test = read_examples(spec, spec.data)
    if spec.train_data is not None:
        train = read_examples(spec, spec.train_data, key="train_data")
    elif spec.split_field:
        train = read_examples(spec, spec.data, split=spec.train_split)
    else:
        train = []
    if spec.taxonomy is not None:
        if not spec.taxonomy.is_file():
            raise UsageError(f"{spec.taxonomy}: taxonomy file not found (key 'taxonomy').")
        taxonomy = load_taxonomy(spec.taxonomy, sep=spec.sep)
        check_labels(test, taxonomy, what=f"taxonomy {spec.taxonomy.name}")
        check_labels(train, taxonomy, what=f"taxonomy {spec.taxonomy.name}")
    else:
        try:
            taxonomy = Taxonomy.from_data([ex.path for ex in test + train], sep=spec.sep)
        except ValueError as exc:  # read_examples checked the names; this is the last line of defence
            raise UsageError(f"{spec.data}: the labels do not form a taxonomy ({exc}).") from None
    return VocData(test=test, train=train, taxonomy=taxonomy)
