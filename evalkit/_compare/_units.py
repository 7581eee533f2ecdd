"""The per-unit values behind a declared per-sample metric (``level="sample"``), with pairing ids and clusters.

A unit is a sample (``unit="sample"``, paired by ``sample_id``) or one element of a list-valued
score (``unit="element"``: an IFEval instruction, paired by ``(sample_id, position)``). Units that
share a cluster value (the declared ``cluster`` field, or the task's ``cluster_field`` setting) are
not independent, and their intervals and tests are cluster-robust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluators.base import record_value
from ..records import SampleRecord
from ._common import Context, is_binary, is_number, reproduces, spec_of


@dataclass(frozen=True)
class Units:
    """Per-unit values of one metric on one checkpoint's records."""

    values: np.ndarray
    ids: list[Any]  # pairing id per unit: sample_id, or (sample_id, position)
    clusters: list[str] | None  # cluster label per unit, None when units are independent
    binary: bool = False  # declared 0/1 (MetricSpec.binary) and its values are: Wilson / McNemar

    def paired_with(self, other: "Units") -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """Values of self and other on the units both have (in self's order), and self's cluster labels."""
        position = {uid: i for i, uid in enumerate(other.ids)}
        keep = [i for i, uid in enumerate(self.ids) if uid in position]
        mine = self.values[keep]
        theirs = other.values[[position[self.ids[i]] for i in keep]]
        clusters = [self.clusters[i] for i in keep] if self.clusters is not None else None
        return mine, theirs, clusters


def cluster_field(ctx: Context, task: str, label: str, metric: str) -> str | None:
    """The task's ``cluster_field`` setting when given, else the metric's declared cluster."""
    configured = ctx.task(label, task).settings.get("cluster_field")
    if isinstance(configured, str) and configured:
        return configured
    return spec_of(ctx, task, label, metric).cluster


def units_of(ctx: Context, task: str, label: str, metric: str, records: list[SampleRecord]) -> Units | None:
    """The declared per-unit values of ``metric`` on ``records``; None for a corpus metric or missing values."""
    spec = spec_of(ctx, task, label, metric)
    field = spec.score_field(metric)
    if field is None or not records:
        return None
    cluster = cluster_field(ctx, task, label, metric)
    values, ids, clusters = [], [], []
    for record in records:
        value = record_value(record, field)
        sid = str(record.sample_id)
        items = list(enumerate(value)) if spec.unit == "element" and isinstance(value, (list, tuple)) else None
        if spec.unit == "element" and items is None:
            return None
        for position, item in items if items is not None else [(None, value)]:
            if not is_number(item):
                return None
            values.append(float(item))
            ids.append(sid if position is None else (sid, position))
            clusters.append(_cluster_label(record, cluster))
    if cluster is not None and any(c is None for c in clusters):
        ctx.warn(
            f"{task}: some records of {label!r} have no {cluster!r} (the cluster field of {metric!r}); "
            "each of them is its own cluster."
        )
        clusters = [c if c is not None else f"\x00{uid}" for c, uid in zip(clusters, ids)]
    array = np.asarray(values, dtype=float)
    return Units(
        array,
        ids,
        clusters if cluster is not None else None,
        binary=_declared_binary(ctx, task, label, metric, spec, array),
    )


def _declared_binary(ctx: Context, task: str, label: str, metric: str, spec, values: np.ndarray) -> bool:
    """The declaration decides (``MetricSpec.binary``); values that break it are reported, and the metric is
    then compared as a mean (a proportion's interval and test would be wrong for them)."""
    if not spec.binary:
        return False
    if is_binary(values):
        return True
    ctx.warn(
        f"{task}: {metric!r} is declared binary (0/1 per unit) but {label!r}'s values are not all 0 or 1; "
        "it is compared as a mean (t interval, paired t test)."
    )
    return False


def _cluster_label(record: SampleRecord, field: str | None) -> str | None:
    if field is None:
        return None
    value = record_value(record, field)
    return None if value is None else str(value)


def sample_units(ctx: Context, task: str, label: str, metric: str) -> Units | None:
    """Units of ``label``'s full records when ``metric`` is declared per-sample and they reproduce its value.

    A declaration the records do not reproduce is reported once in the warnings; the metric is then
    compared as a corpus metric.
    """

    def compute():
        spec = spec_of(ctx, task, label, metric)
        if spec.level != "sample":
            return None
        records = list(ctx.records(label, task).values())
        units = units_of(ctx, task, label, metric, records)
        if units is not None and reproduces(units.values, ctx.task(label, task).metrics.get(metric)):
            return units
        if records:
            ctx.warn(
                f"{task}: {metric!r} is declared the mean of {spec.score_field(metric)} but {label!r}'s records "
                f"{'do not reproduce its value' if units is not None else 'lack that field'}; it is compared "
                "as a corpus metric."
            )
        return None

    return ctx.cached(("sample_units", task, label, metric), compute)
