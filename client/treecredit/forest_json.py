"""The JSON forest format of the CLI (docs/FOREST_JSON.md), validated like the wire format.

Two spellings of the same forest, read into one `ForestDocument`:

    {"nodes": [{"parent": null, "group": "q1", "num_tokens": 12}, {"parent": 0, "reward": 1.0}, ...]}
    {"parent": [null, 0, ...], "group": ["q1", null, ...], "reward": [null, 1.0, ...], "num_tokens": [12, 0, ...]}

Errors are `InvalidArgument` naming the field and index: `nodes[3].parent`, or `parent[3]` in columns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from treecredit.errors import InvalidArgument
from treecredit.forest import Forest
from treecredit.results import ScoreResult
from treecredit.topology import Topology

# Per-node field in the node list -> its column name.
NODE_FIELDS = {
    "parent": "parent",
    "group": "group",
    "num_tokens": "num_tokens",
    "reward": "reward",
    "label": "label",
    "advantage": "node_advantages",
    "confidence": "confidence",
}
FIELD_OF = {column: field for field, column in NODE_FIELDS.items()}
COLUMNS = (*NODE_FIELDS.values(), "leaf_advantages")
TOP_LEVEL = ("nodes", "estimator", *COLUMNS)


@dataclass(frozen=True)
class ForestDocument:
    """A forest read from JSON, with its display labels `[N]` and any advantages it carries (float64 `[N]`)."""

    forest: Forest
    labels: list[str]
    node_advantages: np.ndarray | None = None
    estimator: str | None = None


def load(path: str | Path) -> ForestDocument:
    """Read and validate a forest file; `InvalidArgument` names what is wrong."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidArgument(str(path), f"is not JSON: {error}") from None
    return parse(document)


def parse(document) -> ForestDocument:
    """A validated `ForestDocument` from parsed JSON (either spelling)."""
    if not isinstance(document, dict):
        raise InvalidArgument("(top level)", f"expected an object, got {_kind(document)}")
    unknown = sorted(set(document) - set(TOP_LEVEL))
    if unknown:
        raise InvalidArgument(unknown[0], f"unknown field; expected some of {', '.join(TOP_LEVEL)}")
    estimator = document.get("estimator")
    if estimator is not None and not isinstance(estimator, str):
        raise InvalidArgument("estimator", f"expected a string, got {_kind(estimator)}")
    if "nodes" in document:
        if "parent" in document:
            raise InvalidArgument("nodes", "give either a node list or columns (parent, group, ...), not both")
        columns, name = _columns_of_nodes(document["nodes"]), lambda column, i: f"nodes[{i}].{FIELD_OF[column]}"
    elif "parent" in document:
        columns, name = _columns(document), lambda column, i: f"{column}[{i}]"
    else:
        raise InvalidArgument("nodes", "is required (or the columns parent, group, reward, num_tokens)")
    return _validated(columns, name, estimator)


def _columns_of_nodes(nodes) -> dict[str, list]:
    if not isinstance(nodes, list):
        raise InvalidArgument("nodes", f"expected a list of node objects, got {_kind(nodes)}")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise InvalidArgument(f"nodes[{i}]", f"expected an object, got {_kind(node)}")
        unknown = sorted(set(node) - set(NODE_FIELDS))
        if unknown:
            raise InvalidArgument(f"nodes[{i}].{unknown[0]}", f"unknown field; expected some of {', '.join(NODE_FIELDS)}")
    present = {field for node in nodes for field in node}
    return {column: [node.get(field) for node in nodes] for field, column in NODE_FIELDS.items()
            if field in present or field == "parent"}


def _columns(document: dict) -> dict[str, list]:
    size = document["parent"]
    if not isinstance(size, list):
        raise InvalidArgument("parent", f"expected a list, got {_kind(size)}")
    columns = {}
    for column in COLUMNS:
        if column in document:
            values = document[column]
            if not isinstance(values, list):
                raise InvalidArgument(column, f"expected a list, got {_kind(values)}")
            if len(values) != len(size):
                raise InvalidArgument(column, f"has {len(values)} entries for {len(size)} nodes")
            columns[column] = values
    columns.pop("leaf_advantages", None)  # written by `treecredit score --format json`; derived, not read
    return columns


def _validated(columns: dict[str, list], name, estimator: str | None) -> ForestDocument:
    n = len(columns["parent"])
    parent = np.full(n, -1, np.int64)
    for i, value in enumerate(columns["parent"]):
        if value is not None:
            if not _is_int(value) or not 0 <= value < i:
                raise InvalidArgument(name("parent", i), f"{value!r} must be null (a root) or the index of an earlier node")
            parent[i] = value
    topology = Topology.of(parent)

    groups = columns.get("group", [None] * n)
    for i in np.flatnonzero(parent < 0):
        if not (isinstance(groups[i], str) or _is_int(groups[i])):
            raise InvalidArgument(name("group", i), f"a root needs a group (a string or an integer), got {groups[i]!r}")
    root = topology.root
    for i in np.flatnonzero(parent >= 0):
        if groups[i] is not None and groups[i] != groups[root[i]]:
            raise InvalidArgument(name("group", i), f"only roots name a group; node {i} is in {groups[root[i]]!r}")

    confidence_lists = columns.get("confidence", [None] * n)
    counts = columns.get("num_tokens", [None] * n)
    num_tokens = np.asarray([_count(v, name("num_tokens", i), confidence_lists[i]) for i, v in enumerate(counts)],
                            np.int64).reshape(-1)
    confidence = _confidence(confidence_lists, num_tokens, name) if "confidence" in columns else None
    reward = _numbers(columns.get("reward", [None] * n), "reward", name)
    is_leaf = topology.is_leaf
    for i in range(n):
        if is_leaf[i] and math.isnan(reward[i]):
            raise InvalidArgument(name("reward", i), f"node {i} is a leaf and needs a reward")
        if not is_leaf[i] and not math.isnan(reward[i]):
            raise InvalidArgument(name("reward", i), f"node {i} has children; only leaves carry a reward")

    labels = columns.get("label", [None] * n)
    for i, label in enumerate(labels):
        if label is not None and not isinstance(label, str):
            raise InvalidArgument(name("label", i), f"expected a string, got {_kind(label)}")
    advantages = None
    if "node_advantages" in columns:
        advantages = _numbers(columns["node_advantages"], "node_advantages", name)
        missing = np.isnan(advantages)
        if missing.any():
            raise InvalidArgument(name("node_advantages", int(np.argmax(missing))), "every node needs an advantage, or none")

    forest = Forest.from_arrays(parent, group=np.fromiter(groups, object, n), reward=reward, num_tokens=num_tokens,
                                confidence=confidence)
    return ForestDocument(forest, [label or "" for label in labels], advantages, estimator)


def _numbers(values: list, column: str, name) -> np.ndarray:
    """float64 `[n]` with NaN for null; a finite number or null per entry."""
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidArgument(name(column, i), f"expected a finite number or null, got {value!r}")
        out[i] = value
    return out


def _confidence(lists: list, num_tokens: np.ndarray, name) -> np.ndarray:
    """float32 `[T]`: every node's token confidences, one finite number per token, in node order."""
    values = []
    for i, given in enumerate(lists):
        if given is None and num_tokens[i] == 0:
            continue
        if not isinstance(given, list):
            raise InvalidArgument(name("confidence", i), f"expected a list of numbers (one per token), got {_kind(given)}")
        if len(given) != num_tokens[i]:
            raise InvalidArgument(name("confidence", i), f"has {len(given)} values for {num_tokens[i]} tokens")
        for j, value in enumerate(given):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidArgument(f"{name('confidence', i)}[{j}]", f"expected a finite number, got {value!r}")
        values.extend(given)
    return np.asarray(values, np.float32)


def _count(value, field: str, confidence=None) -> int:
    if value is None:
        return len(confidence) if isinstance(confidence, list) else 0
    if not _is_int(value) or value < 0:
        raise InvalidArgument(field, f"expected a non-negative integer, got {value!r}")
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def scored(document: ForestDocument, result: ScoreResult, estimator: str) -> dict:
    """The columnar JSON of a scored forest: the input's columns plus `node_advantages`,
    `leaf_advantages` (null off the leaves) and `estimator`; `render` reads it without a server."""
    forest = document.forest

    def nullable(values: np.ndarray) -> list:
        return [None if math.isnan(v) else float(v) for v in values.tolist()]

    return {
        "estimator": estimator,
        "parent": [None if p < 0 else p for p in forest.parent.tolist()],
        "group": [forest.groups[g] if p < 0 else None for g, p in zip(forest.group.tolist(), forest.parent.tolist())],
        "num_tokens": forest.num_tokens.tolist(),
        "reward": nullable(forest.reward),
        "label": document.labels,
        **({} if forest.confidence is None else {"confidence": _per_node(forest.confidence, forest.num_tokens)}),
        "node_advantages": nullable(result.node_advantages),
        "leaf_advantages": nullable(result.leaf_advantages),
    }


def _per_node(values: np.ndarray, num_tokens: np.ndarray) -> list:
    """Token values `[T]` as one list per node (null for a node without tokens)."""
    return [chunk.tolist() or None for chunk in np.split(values.astype(np.float64), np.cumsum(num_tokens)[:-1])]
