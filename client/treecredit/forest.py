"""`Forest`: a batch of rollout trees as flat arrays, built node by node or from arrays a trainer holds.

Whatever a caller hands over (lists, numpy, torch tensors in any dtype, bfloat16 and float16 included) is checked
as it arrives; a problem raises ValueError naming the node or field, never a wrong number later.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from treecredit import _wire
from treecredit.arrays import as_numpy, integers, is_none, label, label_array, label_codes
from treecredit.topology import Topology
from treecredit.v1 import forest_pb2 as pb

# Optional per-token arrays: name -> numpy dtype. All are `[T]` but topk_logprobs, `[T, k]`.
TOKEN_FIELDS = {
    "token_ids": np.int64,
    "loss_mask": np.bool_,
    "logprobs": np.float32,
    "topk_logprobs": np.float32,
    "confidence": np.float32,
}
LOG_PROBABILITIES = ("logprobs", "topk_logprobs")


class Forest:
    """Rollout trees over N nodes: `parent [N]`, `group [N]` (ids into `groups`), `reward [N]`,
    `num_tokens [N]`, and optional per-token arrays laid out by node (`token_ids [T]`,
    `loss_mask [T]`, `logprobs [T]`, `topk_logprobs [T, k]`, `confidence [T]`).

    Nodes are numbered in order of adding; a parent always comes before its children. `add` also extends a
    forest made by `from_arrays`. Group labels are any hashables; numpy and torch scalars count as the number
    they hold (`torch.tensor(3)` and `3` are one group).
    """

    def __init__(self) -> None:
        self._base: dict[str, np.ndarray] = {
            "parent": np.zeros(0, np.int64), "group": np.zeros(0, np.int64),
            "reward": np.zeros(0, np.float64), "num_tokens": np.zeros(0, np.int64),
        }
        # Nodes added since `_base` was last extended: per-node lists, folded into `_base` when read.
        self._parent: list[int] = []
        self._group: list[int] = []
        self._reward: list[float] = []
        self._num_tokens: list[int] = []
        self._tokens: dict[str, list[tuple[int, np.ndarray]]] = {name: [] for name in TOKEN_FIELDS}
        self._group_ids: dict[Hashable, int] = {}
        self.groups: list[Hashable] = []  # group labels; `group` holds indices into it
        self._topology: Topology | None = None

    # -- building -----------------------------------------------------------------------------
    def add(
        self,
        parent: int | None,
        tokens: Sequence[int] | np.ndarray | int = (),
        *,
        reward: float | None = None,
        group: Hashable = None,
        loss_mask=None,
        logprobs=None,
        topk_logprobs=None,
        confidence=None,
    ) -> int:
        """Append a node and return its id. A root (`parent=None`) names its `group`; other nodes
        inherit it. `tokens` is the node's token ids `[num_tokens]`, or just how many tokens it holds."""
        node = self.num_nodes
        where = f"node {node}: "
        if parent is None:
            if group is None:
                raise ValueError(f"{where}a root needs a group")
            group = _label(group, where)
            group_id = self._group_ids.get(group, len(self.groups))
        else:
            parent_id = integers(parent, where + "parent")
            if parent_id.ndim:
                raise ValueError(f"{where}parent: expected one node id, got shape {list(parent_id.shape)}")
            parent = int(parent_id)
            if not 0 <= parent < node:
                raise ValueError(f"{where}parent {parent} is not an existing node (0..{node - 1})")
            group_id = self._group_of(parent)
            if group is not None and self.groups[group_id] != _label(group, where):
                raise ValueError(
                    f"{where}only roots name a group; it inherits its parent's ({self.groups[group_id]!r})")

        if isinstance(tokens, (int, np.integer)):
            count, ids = int(tokens), None
            if count < 0:
                raise ValueError(f"{where}a negative token count {count}")
        else:
            ids = token_values("token_ids", tokens, None, where)
            count = len(ids)
        given = {"token_ids": ids, "loss_mask": loss_mask, "logprobs": logprobs,
                 "topk_logprobs": topk_logprobs, "confidence": confidence}
        checked = {name: token_values(name, values, count, where)
                   for name, values in given.items() if values is not None}
        earlier = self._token_fields()
        if count and earlier is not None:  # per-token arrays cover every token or none (the loss mask defaults to 1)
            for name in sorted((earlier ^ checked.keys()) - {"loss_mask"}):
                raise ValueError(f"{where}gives {name}, which the tokens before it lack" if name in checked
                                 else f"{where}has no {name}, which other nodes give")
        width = self._topk_width()
        if count and "topk_logprobs" in checked and width not in (None, checked["topk_logprobs"].shape[1]):
            raise ValueError(f"{where}topk_logprobs has k = {checked['topk_logprobs'].shape[1]} per token; "
                             f"the nodes before it have k = {width}")

        # Every check passed: record the node.
        if count:  # a node without tokens has nothing to record, whichever way it was described
            for name, values in checked.items():
                self._tokens[name].append((node, values))
        if group_id == len(self.groups):
            self._group_ids[group] = group_id
            self.groups.append(group)
        self._parent.append(-1 if parent is None else parent)
        self._group.append(group_id)
        self._reward.append(np.nan if reward is None else float(reward))
        self._num_tokens.append(count)
        self._topology = None
        return node

    @classmethod
    def from_arrays(
        cls,
        parent,
        *,
        group,
        reward,
        num_tokens=None,
        token_ids=None,
        loss_mask=None,
        logprobs=None,
        topk_logprobs=None,
        confidence=None,
    ) -> Forest:
        """A forest from flat arrays: `parent [N]` (-1 at roots, else an earlier node), `group [N]` (read at roots,
        any labels, None elsewhere), `reward [N]` (NaN on internal nodes), `num_tokens [N]`, and optional
        per-token arrays laid out by node. Groups are numbered in the order their first root appears."""
        parent = _vector(integers(parent, "parent"), "parent", None)
        n = len(parent)
        _first("parent", (parent < -1) | (parent >= np.arange(n)),
               lambda i: f"{parent[i]} is neither -1 (a root) nor a node before node {i}")
        topology = Topology.of(parent)
        is_root = parent < 0

        labels = _vector(label_array(group, "group"), "group", n)
        _first("group", is_root & is_none(labels), lambda i: f"root {i} has no group (None)")
        root_group, groups = label_codes(labels[is_root], "group")
        num_tokens = np.zeros(n, np.int64) if num_tokens is None else _vector(
            integers(num_tokens, "num_tokens"), "num_tokens", n)
        _first("num_tokens", num_tokens < 0, lambda i: f"node {i} has a negative count {num_tokens[i]}")
        arrays = {
            "parent": parent,
            "group": root_group[(np.cumsum(is_root) - 1)[topology.root]],
            "reward": _vector(as_numpy(reward, np.float64), "reward", n),
            "num_tokens": num_tokens,
        }
        given = {"token_ids": token_ids, "loss_mask": loss_mask, "logprobs": logprobs,
                 "topk_logprobs": topk_logprobs, "confidence": confidence}
        total = int(num_tokens.sum())
        ends = np.cumsum(num_tokens)
        node_of = lambda t: int(np.searchsorted(ends, t, side="right"))  # noqa: E731
        arrays.update({name: token_values(name, values, total, "", node_of)
                       for name, values in given.items() if values is not None})

        forest = cls()
        forest._base, forest._topology = arrays, topology
        forest.groups = groups
        forest._group_ids = {g: i for i, g in enumerate(groups)}
        return forest

    def _group_of(self, node: int) -> int:
        base = len(self._base["parent"])
        return int(self._base["group"][node]) if node < base else self._group[node - base]

    def _token_fields(self) -> set[str] | None:
        """The per-token fields the tokens recorded so far carry; None before any token."""
        if self._base["num_tokens"].sum() > 0:
            return set(TOKEN_FIELDS).intersection(self._base)
        if any(self._num_tokens):
            return {name for name, given in self._tokens.items() if given}
        return None

    def _topk_width(self) -> int | None:
        """k of the top-k log-probs recorded so far (None before any)."""
        if "topk_logprobs" in self._base:
            return self._base["topk_logprobs"].shape[1]
        given = self._tokens["topk_logprobs"]
        return given[0][1].shape[1] if given else None

    # -- reading --------------------------------------------------------------------------------
    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the forest by field name (only the per-token arrays that were given)."""
        if self._parent:
            self._base = self._extended()
            self._parent, self._group, self._reward, self._num_tokens = [], [], [], []
            self._tokens = {name: [] for name in TOKEN_FIELDS}
        return self._base

    def _extended(self) -> dict[str, np.ndarray]:
        """`_base` with the nodes added since appended."""
        base, first = self._base, len(self._base["parent"])
        added = {"parent": np.asarray(self._parent, np.int64), "group": np.asarray(self._group, np.int64),
                 "reward": np.asarray(self._reward, np.float64), "num_tokens": np.asarray(self._num_tokens, np.int64)}
        arrays = {name: np.concatenate((base[name], values)) for name, values in added.items()}
        base_tokens = int(base["num_tokens"].sum())
        for name, given in self._tokens.items():
            if name not in base and not given:
                continue
            # add() let only the loss mask be left out where other tokens have it: it defaults to 1.
            parts = [base[name]] if name in base else [np.ones(base_tokens, np.bool_)] if base_tokens else []
            recorded = dict(given)
            for offset, count in enumerate(self._num_tokens):
                if count and first + offset not in recorded:
                    recorded[first + offset] = np.ones(count, np.bool_)
            parts.extend(recorded[node] for node in sorted(recorded))
            arrays[name] = np.concatenate(parts)
        return arrays

    @property
    def num_nodes(self) -> int:
        return len(self._base["parent"]) + len(self._parent)

    def __len__(self) -> int:
        return self.num_nodes

    def __getattr__(self, name: str):
        """`forest.parent`, `forest.reward`, `forest.loss_mask`, ...: the array, or None if not given."""
        if name in ("parent", "group", "reward", "num_tokens", *TOKEN_FIELDS):
            return self.arrays.get(name)
        raise AttributeError(name)

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            self._topology = Topology.of(self.arrays["parent"])
        return self._topology

    @property
    def leaves(self) -> np.ndarray:
        """Leaf ids, ascending."""
        return self.topology.leaves

    # -- wire -----------------------------------------------------------------------------------
    def to_proto(self, into: pb.Forest | None = None) -> pb.Forest:
        """The wire form; with `into`, filled in place (e.g. `request.forest`) to spare a copy."""
        message = pb.Forest() if into is None else into
        for name, values in self.arrays.items():
            _wire.encode(values, into=getattr(message, name))
        return message


def token_values(name: str, values, count: int | None, where: str = "", node_of=None) -> np.ndarray:
    """`values` of the per-token field `name` as its dtype, checked: `[count]` (topk_logprobs `[count, k]`, k >= 1;
    any count if None), whole token ids, log-probs <= 0. Errors start with `where` and name the token (and its
    node, `node_of(token)`, when given)."""
    field = where + name

    def at(token: int) -> str:
        return f"{field}[{token}]" + ("" if node_of is None else f" (node {node_of(token)})")

    try:
        array = as_numpy(values)
    except ValueError:  # nested lists numpy cannot make an array of
        raise ValueError(f"{field}: rows of different lengths; every token needs the same number of values") from None
    ndim = 2 if name == "topk_logprobs" else 1
    if array.ndim != ndim or (ndim == 2 and array.shape[1] == 0) or (count is not None and len(array) != count):
        expected = f"[{'num_tokens' if count is None else count}{', k' if ndim == 2 else ''}]"
        raise ValueError(f"{field}: shape {list(array.shape)}, expected {expected}")
    if name == "token_ids":
        return integers(array, field)
    array = array.astype(TOKEN_FIELDS[name], copy=False)
    if name in LOG_PROBABILITIES:
        bad = np.isnan(array) | (array > 0)
        if bad.any():
            first = tuple(np.argwhere(bad)[0])
            raise ValueError(f"{at(first[0])}: {float(array[first]):g} is no log-probability (NaN or > 0)")
    return array


def _label(value, where: str) -> Hashable:
    try:
        return label(value)
    except ValueError as error:
        raise ValueError(f"{where}group: {error}") from None


def _vector(array: np.ndarray, field: str, n: int | None) -> np.ndarray:
    """`array` if it is 1-d (with n entries, when given)."""
    if array.ndim != 1 or (n is not None and len(array) != n):
        raise ValueError(f"{field}: shape {list(array.shape)}, expected [{'N' if n is None else n}] (one per node)")
    return array


def _first(field: str, bad: np.ndarray, describe) -> None:
    """Raise ValueError naming the first index where `bad` holds."""
    if bad.any():
        index = int(np.argmax(bad))
        raise ValueError(f"{field}[{index}]: {describe(index)}")
