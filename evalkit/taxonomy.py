"""The label taxonomy: a tree of label paths, its integer encoding, and loaders for taxonomy files.

A *path* is a tuple of names from the top level down, e.g. ``("Delivery", "Late", "Courier delay")``;
its text form joins the names with a separator (``"Delivery > Late > Courier delay"``). A node is
identified by its FULL path, so an ``"Other"`` under two parents is two different nodes. Leaves may sit
at different depths.

Three kinds of paths matter:

* ``nodes``: every path and every prefix of a path (the tree's nodes, without the virtual root);
* ``labels``: the paths that were given as labels (valid targets for a prediction);
* ``leaves``: the nodes without children. A given label that is a prefix of another given label is an
  internal node: it stays in ``labels`` (a valid target) but is not a leaf. Constrained decoders use
  :meth:`Taxonomy.children` to walk down and :meth:`Taxonomy.is_label` to know where they may stop.

Node ids are positions in the sorted ``nodes`` list, so the same set of paths always gets the same ids.
The arrays ``parent``, ``node_depth`` and ``ancestors`` describe the tree for vectorised metrics.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import UsageError  # absolute: works when pytest imports this file for doctests

__all__ = ["Taxonomy", "load_taxonomy", "DEFAULT_SEP", "as_path", "is_missing"]

DEFAULT_SEP = " > "
_PATH_COLUMNS = ("path", "label")
_TREE_SUFFIXES = (".yaml", ".yml", ".json")
_LINE_SUFFIXES = (".csv", ".tsv", ".txt")


class Taxonomy:
    """A label tree built from label paths.

    Build it with :meth:`from_paths` (a fixed taxonomy), :meth:`from_data` (the labels seen in a
    dataset) or :func:`load_taxonomy` (a file).

    Attributes
    ----------
    sep : str
        Separator of the text form of a path.
    nodes : list of tuple
        All nodes (every given path and all its prefixes), sorted; a node's id is its position here.
    labels : list of tuple
        The given label paths, sorted.
    leaves : list of tuple
        The nodes without children, sorted.
    depth : int
        Length of the longest path.
    parent : numpy.ndarray of int64, shape (n_nodes,)
        Id of each node's parent; -1 for top-level nodes.
    node_depth : numpy.ndarray of int64, shape (n_nodes,)
        Length of each node's path (top-level nodes have depth 1).
    ancestors : numpy.ndarray of int64, shape (n_nodes, depth)
        ``ancestors[i, k]`` is the id of the prefix of length ``k + 1`` of node ``i`` (the node itself
        at ``k + 1 == node_depth[i]``), -1 beyond the node's depth.
    is_leaf_node, is_label_node : numpy.ndarray of bool, shape (n_nodes,)
        Per node id: has no children / was given as a label.

    Examples
    --------
    >>> tax = Taxonomy.from_paths(["Delivery > Late", "Delivery > Lost", ("Billing",)])
    >>> tax.leaves
    [('Billing',), ('Delivery', 'Late'), ('Delivery', 'Lost')]
    >>> tax.children(("Delivery",))
    [('Delivery', 'Late'), ('Delivery', 'Lost')]
    >>> tax.encode(["Delivery > Lost", None, "Nope"]).tolist()
    [3, -1, -1]
    """

    def __init__(self, labels: Iterable[tuple[str, ...]], *, sep: str = DEFAULT_SEP) -> None:
        self.sep = _check_sep(sep)
        self.labels = sorted(set(labels))
        node_set = {path[:k] for path in self.labels for k in range(1, len(path) + 1)}
        self.nodes = sorted(node_set)
        self._index = {node: i for i, node in enumerate(self.nodes)}
        self._text_index: dict[str, int] | None = None
        self.depth = max((len(n) for n in self.nodes), default=0)
        self._build_arrays()

    def _build_arrays(self) -> None:
        n = len(self.nodes)
        self.node_depth = np.fromiter((len(p) for p in self.nodes), dtype=np.int64, count=n)
        self.parent = np.fromiter(
            (self._index[p[:-1]] if len(p) > 1 else -1 for p in self.nodes), dtype=np.int64, count=n
        )
        self.ancestors = _ancestors(self.nodes, self._index, self.depth)
        has_child = np.zeros(n, dtype=bool)
        has_child[self.parent[self.parent >= 0]] = True
        self.is_leaf_node = ~has_child
        self.is_label_node = np.zeros(n, dtype=bool)
        self.is_label_node[[self._index[p] for p in self.labels]] = True
        self.leaves = [p for p, leaf in zip(self.nodes, self.is_leaf_node) if leaf]
        self._children = _children_lists(self.nodes)

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str] | str], *, sep: str = DEFAULT_SEP) -> "Taxonomy":
        """Build a taxonomy whose labels are ``paths`` (tuples of names or ``sep``-joined strings).

        Duplicates are merged. Raises ValueError for an empty path or an empty name in a path.

        Examples
        --------
        >>> Taxonomy.from_paths(["A > B", "A > B > C"]).leaves
        [('A', 'B', 'C')]
        >>> Taxonomy.from_paths(["A > B", "A > B > C"]).labels
        [('A', 'B'), ('A', 'B', 'C')]
        """
        _check_sep(sep)
        labels = []
        for position, item in enumerate(paths):
            try:
                labels.append(as_path(item, sep))
            except ValueError as exc:
                raise ValueError(f"path at position {position}: {exc}") from None
        return cls(labels, sep=sep)

    @classmethod
    def from_data(cls, labels: Iterable[Sequence[str] | str | None], *, sep: str = DEFAULT_SEP) -> "Taxonomy":
        """Derive a taxonomy from dataset labels: like :meth:`from_paths` but skips missing labels (None or blank).

        Examples
        --------
        >>> len(Taxonomy.from_data(["A > B", None, "", "A > C", "A > B"]))
        2
        """
        return cls.from_paths((item for item in labels if not is_missing(item)), sep=sep)

    # ----------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        """Number of leaves."""
        return len(self.leaves)

    def __contains__(self, path: object) -> bool:
        """True if ``path`` (tuple or text) is a node of the tree (a leaf or an internal node)."""
        return self._lookup(path) >= 0

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        """Iterate over the leaves."""
        return iter(self.leaves)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and self.labels == other.labels and self.sep == other.sep

    def __hash__(self) -> int:
        return hash((tuple(self.labels), self.sep))

    def __repr__(self) -> str:
        return f"Taxonomy({len(self.leaves)} leaves, {len(self.nodes)} nodes, depth {self.depth})"

    def is_leaf(self, path: Sequence[str] | str) -> bool:
        """True if ``path`` is a node without children (False for unknown paths)."""
        i = self._lookup(path)
        return bool(i >= 0 and self.is_leaf_node[i])

    def is_label(self, path: Sequence[str] | str) -> bool:
        """True if ``path`` was given as a label (a valid prediction target; leaves and labelled inner nodes)."""
        i = self._lookup(path)
        return bool(i >= 0 and self.is_label_node[i])

    def children(self, prefix: Sequence[str] | str = ()) -> list[tuple[str, ...]]:
        """The children of ``prefix`` as full paths, sorted; ``()`` gives the top level. KeyError if unknown."""
        key = () if prefix in ((), "") else as_path(prefix, self.sep)
        if key not in self._children:
            raise KeyError(f"{self.format(key)!r} is not a node of the taxonomy")
        return list(self._children[key])

    def format(self, path: Sequence[str]) -> str:
        """The text form of ``path``: names joined with ``sep``."""
        return self.sep.join(path)

    def parse(self, text: str) -> tuple[str, ...]:
        """Split ``text`` on ``sep`` and strip each name (no check that the path exists)."""
        return tuple(part.strip() for part in text.split(self.sep.strip()))

    def node_id(self, path: Sequence[str] | str) -> int:
        """The integer id of a node; KeyError if ``path`` is not a node."""
        i = self._lookup(path)
        if i < 0:
            raise KeyError(f"{path!r} is not a node of the taxonomy")
        return i

    def encode(self, paths: Iterable[Sequence[str] | str | None]) -> np.ndarray:
        """Node ids of ``paths`` as an int64 array; -1 for None, blank, malformed or unknown paths.

        Each distinct value is parsed once, so encoding a million labels with few distinct values is fast.
        """
        values, distinct = _distinct_values(paths)
        lookup = {value: self._lookup(value) for value in distinct}
        return np.fromiter(map(lookup.__getitem__, values), dtype=np.int64, count=len(values))

    def decode(self, ids: Iterable[int]) -> list[tuple[str, ...] | None]:
        """Paths of node ids; None for -1."""
        return [self.nodes[i] if i >= 0 else None for i in np.asarray(ids, dtype=np.int64).tolist()]

    def fingerprint(self) -> str:
        """A short stable hash of the labels and separator (for task config hashes)."""
        from evalkit._io import stable_hash

        return stable_hash({"sep": self.sep, "labels": [list(p) for p in self.labels]})

    def to_tree(self) -> dict[str, Any]:
        """Nested mapping {name: subtree}, with ``None`` for leaves (the YAML/JSON file form)."""
        return _nested_tree(self.nodes, self.is_leaf_node)

    def _lookup(self, path: object) -> int:
        if isinstance(path, str):
            if self._text_index is None:
                self._text_index = {self.format(p): i for i, p in enumerate(self.nodes)}
            found = self._text_index.get(path)
            if found is not None:
                return found
            path = self.parse(path)
        if isinstance(path, (tuple, list)):
            return self._index.get(_trim(path), -1)
        return -1


# --------------------------------------------------------------------------------- path helpers
def _check_sep(sep: object) -> str:
    if not isinstance(sep, str) or not sep.strip():
        raise ValueError(f"The 'sep' parameter must be a non-blank string such as ' > '. Got {sep!r} instead.")
    return sep


def is_missing(item: object) -> bool:
    if item is None:
        return True
    if isinstance(item, float) and item != item:  # NaN from pandas
        return True
    return isinstance(item, (str, tuple, list)) and (len(item) == 0 or (isinstance(item, str) and not item.strip()))


def _trim(names: Sequence[Any]) -> tuple[Any, ...]:
    """Drop trailing empty levels of a tuple path (the fixed-width per-level form pads short paths with "")."""
    names = tuple(names)
    end = len(names)
    while end and (names[end - 1] is None or names[end - 1] == ""):
        end -= 1
    return names[:end]


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _distinct_values(paths: Iterable[Any]) -> tuple[Sequence[Any], dict[Any, None]]:
    """``paths`` as a sequence, and its distinct values in first-seen order (so each is parsed once)."""
    values = paths if isinstance(paths, (list, tuple, np.ndarray)) else list(paths)
    try:
        return values, dict.fromkeys(values)
    except TypeError:  # lists inside: make them hashable first (slower path)
        values = [_hashable(v) for v in values]
        return values, dict.fromkeys(values)


# --------------------------------------------------------------------------------- tree structure
def _ancestors(nodes: list[tuple[str, ...]], index: dict[tuple[str, ...], int], depth: int) -> np.ndarray:
    """``[i, k]``: the id of node ``i``'s prefix of length ``k + 1``; -1 beyond the node's depth."""
    ancestors = np.full((len(nodes), depth), -1, dtype=np.int64)
    for i, path in enumerate(nodes):
        for k in range(len(path)):
            ancestors[i, k] = index[path[: k + 1]]
    return ancestors


def _children_lists(nodes: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Each node's children, sorted because ``nodes`` is; the virtual root ``()`` lists the top level."""
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {(): []}
    for path in nodes:
        children.setdefault(path, [])
        children[path[:-1]].append(path)
    return children


def as_path(item: Sequence[str] | str, sep: str) -> tuple[str, ...]:
    """A validated path tuple from a tuple/list of names or a ``sep``-joined string (ValueError if bad)."""
    if isinstance(item, str):
        names = tuple(part.strip() for part in item.split(sep.strip()))
    elif isinstance(item, (tuple, list)):
        names = _trim(item)
    else:
        raise ValueError(f"expected a tuple of names or a {sep!r}-joined string, got {type(item).__name__} {item!r}")
    if not names or names == ("",):
        raise ValueError("empty path")
    for level, name in enumerate(names, start=1):
        if not isinstance(name, str):
            raise ValueError(f"name at level {level} of {names!r} is {type(name).__name__}, not str")
        if not name.strip():
            raise ValueError(f"empty name at level {level} in {sep.join(names)!r}")
        if name != name.strip():
            raise ValueError(f"name {name!r} at level {level} has surrounding whitespace")
        if sep.strip() in name:
            raise ValueError(f"name {name!r} at level {level} contains the separator {sep.strip()!r}")
    return names


# --------------------------------------------------------------------------------- loaders
def load_taxonomy(path: str | Path, *, sep: str = DEFAULT_SEP, columns: Sequence[str] | None = None) -> Taxonomy:
    """Load a taxonomy file.

    Formats, by suffix:

    * ``.yaml`` / ``.yml`` / ``.json``: a tree of nested mappings ``{name: subtree}``; a subtree is a
      mapping, a list of leaf names (list items may also be mappings), or ``null`` / ``{}`` for a leaf.
    * ``.txt``: one full label path per line (``A > B > C``); blank lines and lines starting with ``#``
      are skipped.
    * ``.csv`` / ``.tsv``: one label path per row, taken from the column named ``path`` or ``label``
      (case-insensitive; that row is then the header) or else from the first column (no header).
      With ``columns=["product", "sub_product", ...]`` the header names one column per level and the
      path is the row's non-empty values of those columns, in order (an empty cell is a missing level
      and is skipped).

    Raises
    ------
    evalkit.errors.UsageError
        Naming the file and the line number (the key path for YAML/JSON trees) of a duplicate path,
        an empty name (``"A >  > B"``), a name containing the separator, or a malformed row.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"taxonomy file {path} does not exist; pass a YAML/JSON tree or a CSV/TXT of label paths.")
    suffix = path.suffix.lower()
    if suffix in _TREE_SUFFIXES:
        labels = _read_tree(path, sep)
    elif suffix in _LINE_SUFFIXES:
        labels = _read_lines(path, sep, columns)
    else:
        raise UsageError(
            f"taxonomy file {path}: unknown format {suffix!r}; use one of {', '.join(_TREE_SUFFIXES + _LINE_SUFFIXES)}."
        )
    if not labels:
        raise UsageError(f"taxonomy file {path} contains no label paths.")
    return Taxonomy(labels, sep=sep)


def _read_lines(path: Path, sep: str, columns: Sequence[str] | None) -> list[tuple[str, ...]]:
    first_seen: dict[tuple[str, ...], int] = {}
    for line_no, text in _iter_path_rows(path, sep, columns):
        try:
            parsed = as_path(tuple(n.strip() for n in text), sep) if isinstance(text, tuple) else as_path(text, sep)
        except ValueError as exc:
            raise UsageError(f"{path} line {line_no}: {exc}; fix or remove that line.") from None
        if parsed in first_seen:
            raise UsageError(
                f"{path} line {line_no}: duplicate label path {sep.join(parsed)!r} (first on line {first_seen[parsed]}); remove one of them."
            )
        first_seen[parsed] = line_no
    return list(first_seen)


def _iter_path_rows(path: Path, sep: str, columns: Sequence[str] | None) -> Iterator[tuple[int, Any]]:
    """(line number, path text or tuple of names) per data row of a TXT/CSV/TSV file."""
    import io

    from evalkit._io import read_text

    handle = io.StringIO(read_text(path, what="taxonomy file"), newline="")
    if path.suffix.lower() == ".txt":
        for line_no, line in enumerate(handle, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                yield line_no, line.rstrip("\r\n")
        return
    reader = csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        yield from _csv_rows(reader, path, columns)
    except csv.Error as exc:  # a NUL byte, an oversized field: not a CSV of label paths
        raise UsageError(f"{path} line {reader.line_num}: not readable as CSV ({exc}).") from None


def _csv_rows(reader: Any, path: Path, columns: Sequence[str] | None) -> Iterator[tuple[int, Any]]:
    start = 1
    select = None  # (index,) for one path column, or indexes of level columns
    for row in reader:
        line_no, start = start, reader.line_num + 1  # a quoted cell may span lines: report where the row starts
        if not any(cell.strip() for cell in row):
            continue
        if select is None:
            select, is_header = _choose_columns(row, path, line_no, columns)
            if is_header:
                continue
        if len(row) <= max(select):
            raise UsageError(
                f"{path} line {line_no}: row has {len(row)} column(s), expected at least {max(select) + 1}."
            )
        if len(select) == 1:
            yield line_no, row[select[0]]
        else:
            # In the per-level form an empty cell means "no such level for this label" (the CFPB form
            # has products without sub-product), so it is skipped rather than rejected.
            yield line_no, tuple(name for name in (row[i].strip() for i in select) if name)


def _choose_columns(row: list[str], path: Path, line_no: int, columns: Sequence[str] | None) -> tuple[list[int], bool]:
    header = [cell.strip().lower() for cell in row]
    if columns:
        missing = [c for c in columns if c.lower() not in header]
        if missing:
            raise UsageError(f"{path} line {line_no}: header has no column(s) {missing}; columns are {row}.")
        return [header.index(c.lower()) for c in columns], True
    for name in _PATH_COLUMNS:
        if name in header:
            return [header.index(name)], True
    return [0], False


def _nested_tree(nodes: list[tuple[str, ...]], is_leaf_node: np.ndarray) -> dict[str, Any]:
    """The file form :func:`_read_tree` reads: {name: subtree}, ``None`` for a leaf."""
    tree: dict[str, Any] = {}
    for path, leaf in zip(nodes, is_leaf_node):  # sorted, so a parent always comes before its children
        parent = tree
        for name in path[:-1]:
            parent = parent[name]
        parent[path[-1]] = None if leaf else {}
    return tree


def _read_tree(path: Path, sep: str) -> list[tuple[str, ...]]:
    from evalkit._io import parse_yaml, read_text

    text = read_text(path, what="taxonomy file")
    try:
        if path.suffix.lower() == ".json":
            tree = json.loads(text, object_pairs_hook=_json_pairs(path))
        else:
            tree = parse_yaml(text, source=str(path))
    except UsageError:
        raise
    except RecursionError:
        raise UsageError(f"taxonomy file {path}: nested too deeply.") from None
    except ValueError as exc:  # JSON syntax errors carry their own line numbers
        raise UsageError(f"taxonomy file {path} is not valid JSON: {exc}".replace("\n", " ")) from None
    if not isinstance(tree, (dict, list)):
        raise UsageError(f"taxonomy file {path}: expected a mapping of top-level names, got {type(tree).__name__}.")
    labels: list[tuple[str, ...]] = []
    try:
        _walk_tree(tree, (), labels, path, sep)
    except RecursionError:
        raise UsageError(f"taxonomy file {path}: the tree is nested too deeply.") from None
    return labels


def _walk_tree(subtree: Any, prefix: tuple[str, ...], out: list, path: Path, sep: str) -> None:
    where = sep.join(prefix) or "(top level)"
    items: list[tuple[Any, Any]] = []
    if isinstance(subtree, dict):
        items = list(subtree.items())
    elif isinstance(subtree, list):
        for element in subtree:
            if isinstance(element, dict):
                items.extend(element.items())
            elif isinstance(element, (list, tuple)):
                raise UsageError(f"{path}: under {where!r}: a list item is itself a list; use a mapping for subtrees.")
            else:
                items.append((element, None))
    seen: set[str] = set()
    for key, child in items:
        name = _tree_name(key, prefix, path, sep)
        if name in seen:
            raise UsageError(f"{path}: duplicate name {name!r} under {where!r}; remove one of them.")
        seen.add(name)
        node = prefix + (name,)
        if child is None or child == {} or child == []:
            out.append(node)
        elif isinstance(child, (dict, list)):
            _walk_tree(child, node, out, path, sep)
        else:
            raise UsageError(
                f"{path}: {sep.join(node)!r} has value {child!r}; a subtree must be a mapping, a list of names, or null for a leaf."
            )


def _tree_name(key: Any, prefix: tuple[str, ...], path: Path, sep: str) -> str:
    where = sep.join(prefix) or "(top level)"
    if isinstance(key, bool) or key is None or not isinstance(key, (str, int, float)):
        raise UsageError(f"{path}: under {where!r}: name {key!r} is not a string; quote it in the file.")
    name = str(key).strip()
    if not name:
        raise UsageError(f"{path}: under {where!r}: empty name; remove it or give it a name.")
    if sep.strip() in name:
        raise UsageError(f"{path}: under {where!r}: name {name!r} contains the separator {sep.strip()!r}.")
    return name


def _json_pairs(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise UsageError(
                f"{path}: duplicate key(s) {duplicates} in one object (key path: {keys}); remove one of them."
            )
        return dict(pairs)

    return hook
