"""``SampleRecord.to_dict``'s fast path gives ``dataclasses.asdict``'s dict: same keys, order, values, JSON bytes."""

from __future__ import annotations

import dataclasses
import json

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evalkit.records import SampleRecord  # noqa: E402

_ATOMS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_JSON = st.recursive(_ATOMS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=4), max_leaves=12)
#: Values asdict treats differently from plain JSON (converted tuples, numpy scalars, a nested dataclass).
_ODD = st.tuples(_ATOMS, _ATOMS) | st.floats(allow_nan=False).map(lambda x: __import__("numpy").float64(x)) | \
    st.builds(lambda x: SampleRecord(sample_id=str(x)), st.integers())


@given(st.text(max_size=6), _JSON, _JSON | _ODD, st.none() | st.booleans(), st.dictionaries(st.text(max_size=5), _JSON | _ODD),
       st.none() | st.text(max_size=6), st.none() | st.text(max_size=20), st.dictionaries(st.text(max_size=5), _JSON | _ODD))
@settings(max_examples=60, deadline=None)
def test_to_dict_equals_asdict(sample_id, target, prediction, correct, scores, group, text, extra):
    record = SampleRecord(sample_id, target, prediction, correct, scores, group, text, extra)
    ours, theirs = record.to_dict(), dataclasses.asdict(record)
    assert list(ours) == [f.name for f in dataclasses.fields(SampleRecord)]
    assert ours == theirs
    assert json.dumps(ours, default=repr) == json.dumps(theirs, default=repr)
    if isinstance(ours["extra"], dict) and ours["extra"]:
        ours["extra"].clear()  # a copy, as asdict's: the record keeps its values
        assert record.extra
