"""The VOC output parser as it was before the rapidfuzz index (difflib against every candidate, every time).

The reference for the property tests in tests/test_voc_throughput.py and for bench/voc_throughput, which
check that the bulk matcher gives identical parses.
"""

from __future__ import annotations

import difflib

from evalkit.voc.parsing import OutputParser, normalize_name


class DifflibParser(OutputParser):
    """The parser as it was before the rapidfuzz index: difflib against every candidate, every time."""

    def _best_child(self, prefix, pieces, seps, i):
        kids = self._children_of(prefix)
        best_ratio, best = self.cutoff, None
        for span in range(1, 4):
            if i + span > len(pieces):
                break
            candidate = "".join(p + s for p, s in zip(pieces[i:i + span], seps[i:i + span - 1] + [""]))
            for name, child in sorted(kids, key=lambda nc: nc[1]):
                ratio = difflib.SequenceMatcher(None, candidate, name).ratio()
                if ratio > best_ratio or (ratio == best_ratio and best is None):
                    best_ratio, best = ratio, (child, i + span)
        return best

    def _unique_label_named(self, prefix, rest):
        below = [p for p in self.taxonomy.labels if p[:len(prefix)] == prefix and len(p) > len(prefix)]
        scored = [(difflib.SequenceMatcher(None, rest, normalize_name(p[-1])).ratio(), p) for p in below]
        top = max((r for r, _ in scored), default=0.0)
        winners = [p for r, p in scored if r == top]
        return winners[0] if top >= self.cutoff and len(winners) == 1 else None
