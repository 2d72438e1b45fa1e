"""`Forest`: a batch of rollout trees as flat arrays, built node by node or from arrays a trainer holds."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
import numpy as np

from treecredit import _wire
from treecredit.topology import Topology
from treecredit.v1 import forest_pb2 as pb

# Optional per-token arrays: name -> (numpy dtype, trailing shape is free).
TOKEN_FIELDS = {
    "token_ids": np.int64,
    "loss_mask": np.bool_,
    "logprobs": np.float32,
    "topk_logprobs": np.float32,
    "confidence": np.float32,
}


class Forest:
    """Rollout trees over N nodes: `parent [N]`, `group [N]` (ids into `groups`), `reward [N]`,
    `num_tokens [N]`, and optional per-token arrays laid out by node (`token_ids [T]`,
    `loss_mask [T]`, `logprobs [T]`, `topk_logprobs [T, k]`, `confidence [T]`).

    Nodes are numbered in order of adding; a parent always comes before its children.
    """

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._group: list[int] = []
        self._reward: list[float] = []
        self._num_tokens: list[int] = []
        self._tokens: dict[str, list[tuple[int, np.ndarray]]] = {name: [] for name in TOKEN_FIELDS}
        self._group_ids: dict[Hashable, int] = {}
        self.groups: list[Hashable] = []  # group labels; `group` holds indices into it
        self._arrays: dict[str, np.ndarray] | None = None
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
        inherit it. `tokens` is the node's token ids, or just how many tokens it holds."""
        node = len(self._parent)
        if parent is None:
            if group is None:
                raise ValueError(f"node {node}: a root needs a group")
            group_id = self._group_ids.setdefault(group, len(self.groups))
            if group_id == len(self.groups):
                self.groups.append(group)
        else:
            if not 0 <= parent < node:
                raise ValueError(f"node {node}: parent {parent} is not an existing node")
            if group is not None and self.groups[self._group[parent]] != group:
                raise ValueError(f"node {node}: only roots name a group; it inherits its parent's")
            group_id = self._group[parent]

        if isinstance(tokens, (int, np.integer)):
            count, ids = int(tokens), None
        else:
            ids = np.asarray(tokens, dtype=np.int64).reshape(-1)
            count = len(ids)
        given = {"token_ids": ids, "loss_mask": loss_mask, "logprobs": logprobs,
                 "topk_logprobs": topk_logprobs, "confidence": confidence}
        for name, values in given.items():
            if values is not None:
                values = np.asarray(values, dtype=TOKEN_FIELDS[name])
                if len(values) != count:
                    raise ValueError(f"node {node}: {name} has {len(values)} entries for {count} tokens")
                if count:  # a node without tokens has nothing to record, whichever way it was described
                    self._tokens[name].append((node, values))

        self._parent.append(-1 if parent is None else int(parent))
        self._group.append(group_id)
        self._reward.append(np.nan if reward is None else float(reward))
        self._num_tokens.append(count)
        self._arrays = self._topology = None
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
        """A forest from flat arrays: `group` per node (read at roots, any labels), `reward` per node
        (NaN on internal nodes), `num_tokens` per node, and optional per-token arrays laid out by node."""
        parent = np.asarray(parent, dtype=np.int64)
        labels, group_ids = np.unique(np.asarray(group), return_inverse=True)
        forest = cls()
        forest.groups = labels.tolist()
        arrays = {
            "parent": parent,
            "group": group_ids.astype(np.int64).reshape(-1),
            "reward": np.asarray(reward, dtype=np.float64),
            "num_tokens": (np.zeros(len(parent), np.int64) if num_tokens is None
                           else np.asarray(num_tokens, dtype=np.int64)),
        }
        given = {"token_ids": token_ids, "loss_mask": loss_mask, "logprobs": logprobs,
                 "topk_logprobs": topk_logprobs, "confidence": confidence}
        arrays.update({name: np.asarray(v, dtype=TOKEN_FIELDS[name]) for name, v in given.items() if v is not None})
        forest._arrays = arrays
        return forest

    # -- reading --------------------------------------------------------------------------------
    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the forest by field name (only the per-token arrays that were given)."""
        if self._arrays is None:
            self._arrays = self._materialise()
        return self._arrays

    def _materialise(self) -> dict[str, np.ndarray]:
        num_tokens = np.asarray(self._num_tokens, dtype=np.int64)
        arrays = {
            "parent": np.asarray(self._parent, dtype=np.int64),
            "group": np.asarray(self._group, dtype=np.int64),
            "reward": np.asarray(self._reward, dtype=np.float64),
            "num_tokens": num_tokens,
        }
        for name, given in self._tokens.items():
            if not given:
                continue
            nodes = {node for node, _ in given}
            missing = [n for n in np.flatnonzero(num_tokens) if n not in nodes]
            if missing and name != "loss_mask":
                raise ValueError(f"{name} given for some nodes but not for node {missing[0]}")
            filler = [(n, np.ones(num_tokens[n], np.bool_)) for n in missing]
            parts = [values for _, values in sorted(given + filler, key=lambda item: item[0])]
            arrays[name] = np.concatenate(parts)
        return arrays

    def __len__(self) -> int:
        return len(self.arrays["parent"])

    @property
    def num_nodes(self) -> int:
        return len(self)

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
