"""Model output (free text) -> a label path of the taxonomy, or None (invalid), with the rule that matched.

Rules, tried in order (the first that gives a label path wins; the rule's name is recorded):

``exact``
    The output, stripped, is the label path written exactly as the taxonomy writes it.
``normalized``
    After cleaning (``<think>...</think>`` blocks dropped; then the first non-empty line; a leading ``Label:``/``Category:``/``Answer:``, list bullet,
    quotes, backticks, ``**`` and a trailing ``.`` removed), ignoring case and runs of whitespace, and
    accepting any of the separators ``>``, ``->``, ``=>``, ``→``, ``»``, ``/``, ``|``, ``::`` between
    levels (with or without spaces), the output spells a label path name by name. Names that contain a
    separator character (CFPB's ``Taking/threatening an illegal action``) still match: the walk down
    the tree tries each child name at the current position, longest first.
``closest``
    The cleaned output is split at the separators into segments and walked down the tree: at each level
    the segment (or up to three segments re-joined, for names containing a separator character) is
    matched to the most similar child name of the path so far (``difflib`` ratio, case-insensitive,
    at least ``cutoff`` = 0.8; ties go to the first name in sorted order). Where a level finds no such
    child (a skipped level, or only the leaf name was written), the rest of the output is matched to
    the *last* names of the label paths below the path so far, and taken only if exactly one label
    has the best ratio (a bare ``Other`` under many parents stays invalid). The walk must end on a label
    path with every segment used.
``invalid``
    Anything else: the prediction is None; the raw output stays in the record.

The ``closest`` rule is exact ``difflib`` matching, made fast without changing a result: the candidate
names of each level are indexed once, ``rapidfuzz``'s Indel similarity (``2 * LCS / total length``, an
upper bound of difflib's ratio, whose matched characters form a common subsequence) is computed for all
candidates at once in C, and difflib's ratio is computed only for the candidates whose bound can still
reach the cutoff or the best ratio so far.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rapidfuzz import process
from rapidfuzz.distance import Indel

if TYPE_CHECKING:
    from ..taxonomy import Taxonomy

__all__ = ["ParseResult", "OutputParser", "clean_output", "normalize_name", "SEPARATOR_PATTERN"]

#: Separators accepted between levels, with optional surrounding whitespace.
SEPARATOR_PATTERN = re.compile(r"\s*(?:->|=>|→|»|>|/|\||::)\s*")
_PREFIX = re.compile(r"^\s*(?:(?:[-*•]|\d+[.)])\s+)?(?:\*\*)?\s*(?:label|category|answer|class|path)\s*[:=]\s*", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_WRAPPERS = "\"'`*“”‘’ \t"
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
#: Slack on the rapidfuzz bound: both ratios are 2M/T, computed in different floating-point steps.
_BOUND_SLACK = 1e-9


@dataclass(frozen=True)
class ParseResult:
    """A parsed output: the label path (None when invalid) and the rule that produced it."""

    path: tuple[str, ...] | None
    rule: str

    @property
    def invalid(self) -> bool:
        return self.path is None


def normalize_name(text: str) -> str:
    """Lower-case (casefold) with runs of whitespace collapsed to one space and the ends stripped.

    Examples
    --------
    >>> normalize_name("  Late   DELIVERY ")
    'late delivery'
    """
    return " ".join(text.casefold().split())


def clean_output(raw: str) -> str:
    """The label part of a raw generation: first non-empty line without prefixes, bullets and quotes.

    Examples
    --------
    >>> clean_output('\\n  Label: "Delivery > Late delivery".\\nBecause the parcel...')
    'Delivery > Late delivery'
    """
    text = _THINK.sub("", raw or "")  # reasoning models: the answer follows the <think> block
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line, count=1)
    line = _BULLET.sub("", line, count=1)
    line = line.strip(_WRAPPERS).rstrip(".").strip(_WRAPPERS)
    return line


class OutputParser:
    """Parses model outputs against one taxonomy (indexes built once, reused for every sample).

    Examples
    --------
    >>> from evalkit.taxonomy import Taxonomy
    >>> tax = Taxonomy.from_paths(["Delivery > Late delivery", "Delivery > Other", "Billing > Other"])
    >>> parser = OutputParser(tax)
    >>> parser.parse("Delivery > Late delivery")
    ParseResult(path=('Delivery', 'Late delivery'), rule='exact')
    >>> parser.parse(" delivery/late  DELIVERY")
    ParseResult(path=('Delivery', 'Late delivery'), rule='normalized')
    >>> parser.parse("Delivry > Late delivry")
    ParseResult(path=('Delivery', 'Late delivery'), rule='closest')
    >>> parser.parse("Other").rule
    'invalid'
    """

    def __init__(self, taxonomy: "Taxonomy", *, cutoff: float = 0.8) -> None:
        if not 0.0 < cutoff <= 1.0:
            raise ValueError(f"The 'cutoff' parameter of OutputParser must be in (0, 1]. Got {cutoff!r} instead.")
        self.taxonomy = taxonomy
        self.cutoff = cutoff
        self._formatted = {taxonomy.format(p): p for p in taxonomy.labels}
        self._labels = set(taxonomy.labels)
        self._children: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {}
        self._below: dict[tuple[str, ...], tuple[list[str], list[tuple[str, ...]]]] = {}
        self._kids_by_path: dict[tuple[str, ...], tuple[list[str], list[tuple[str, ...]]]] = {}

    def parse(self, raw: str | None) -> ParseResult:
        """Parse one raw output (see the module docstring for the rules)."""
        raw = raw or ""
        if raw.strip() in self._formatted:
            return ParseResult(self._formatted[raw.strip()], "exact")
        text = normalize_name(clean_output(raw))
        if not text:
            return ParseResult(None, "invalid")
        path = self._walk_exact((), text, 0)
        if path is not None:
            return ParseResult(path, "normalized")
        path = self._walk_closest(text)
        return ParseResult(path, "closest" if path is not None else "invalid")

    # ----------------------------------------------------------------------------- rule "normalized"
    def _children_of(self, prefix: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
        """(normalised name, child path) pairs of ``prefix``, longest name first."""
        if prefix not in self._children:
            kids = self.taxonomy.children(prefix)
            self._children[prefix] = sorted(
                ((normalize_name(c[-1]), c) for c in kids), key=lambda nc: (-len(nc[0]), nc[1])
            )
        return self._children[prefix]

    def _walk_exact(self, prefix: tuple[str, ...], text: str, pos: int) -> tuple[str, ...] | None:
        for name, child in self._children_of(prefix):
            if not text.startswith(name, pos):
                continue
            end = pos + len(name)
            if end == len(text):
                if child in self._labels:
                    return child
                continue
            sep = SEPARATOR_PATTERN.match(text, end)
            if sep and sep.end() < len(text) and self.taxonomy.children(child):
                found = self._walk_exact(child, text, sep.end())
                if found is not None:
                    return found
        return None

    # ----------------------------------------------------------------------------- rule "closest"
    def _walk_closest(self, text: str) -> tuple[str, ...] | None:
        pieces = SEPARATOR_PATTERN.split(text)
        seps = SEPARATOR_PATTERN.findall(text)
        prefix: tuple[str, ...] = ()
        i = 0
        while i < len(pieces):
            best = self._best_child(prefix, pieces, seps, i)
            if best is None:
                rest = "".join(p + s for p, s in zip(pieces[i:], seps[i:] + [""]))
                return self._unique_label_named(prefix, rest)
            prefix, i = best
        return prefix if prefix in self._labels else None

    def _best_child(self, prefix: tuple[str, ...], pieces: list[str], seps: list[str], i: int):
        """The most similar child (difflib ratio >= cutoff; ties: first span, then first path in sorted order)."""
        names, paths = self._sorted_kids(prefix)
        best_ratio, best = self.cutoff, None
        for span in range(1, 4):
            if i + span > len(pieces):
                break
            candidate = "".join(p + s for p, s in zip(pieces[i : i + span], seps[i : i + span - 1] + [""]))
            for k in _reachable(candidate, names, best_ratio):
                ratio = difflib.SequenceMatcher(None, candidate, names[k]).ratio()
                if ratio > best_ratio or (ratio == best_ratio and best is None):
                    best_ratio, best = ratio, (paths[k], i + span)
        return best

    def _sorted_kids(self, prefix: tuple[str, ...]) -> tuple[list[str], list[tuple[str, ...]]]:
        """(normalised names, paths) of the children of ``prefix`` in sorted path order, built once."""
        if prefix not in self._kids_by_path:
            ordered = sorted(self._children_of(prefix), key=lambda nc: nc[1])
            self._kids_by_path[prefix] = ([n for n, _ in ordered], [c for _, c in ordered])
        return self._kids_by_path[prefix]

    def _unique_label_named(self, prefix: tuple[str, ...], rest: str) -> tuple[str, ...] | None:
        """The one label below ``prefix`` whose last name is closest to ``rest`` (None if none or tied)."""
        if prefix not in self._below:
            below = [p for p in self.taxonomy.labels if p[: len(prefix)] == prefix and len(p) > len(prefix)]
            self._below[prefix] = ([normalize_name(p[-1]) for p in below], below)
        names, below = self._below[prefix]
        # Labels whose bound is under the cutoff cannot win (a winner needs ratio >= cutoff), nor tie a winner.
        scored = [
            (difflib.SequenceMatcher(None, rest, names[k]).ratio(), below[k])
            for k in _reachable(rest, names, self.cutoff)
        ]
        top = max((r for r, _ in scored), default=0.0)
        winners = [p for r, p in scored if r == top]
        return winners[0] if top >= self.cutoff and len(winners) == 1 else None


def _reachable(query: str, names: list[str], floor: float) -> list[int]:
    """Positions of ``names`` whose difflib ratio with ``query`` can be >= ``floor`` (in order).

    rapidfuzz's normalised Indel similarity is ``2 * LCS / (len(a) + len(b))`` and difflib's ratio is
    ``2 * M / (len(a) + len(b))`` with M the characters of its matching blocks, a common subsequence, so
    M <= LCS and the Indel similarity bounds the ratio from above.
    """
    if not names:
        return []
    bounds = process.cdist([query], names, scorer=Indel.normalized_similarity, workers=1)[0]
    return [k for k, bound in enumerate(bounds) if bound >= floor - _BOUND_SLACK]
