"""Tree-packed training: a forest laid out as one sequence per microbatch, every unique token once.

    packed = client.pack(forest, "tree_grpo", loss_agg_mode="token-mean")
    logits = model(packed.input_ids, position_ids=packed.position_ids, mask=treecredit.torch.flex_block_mask(packed))
    loss = treecredit.torch.packed_policy_loss(treecredit.torch.packed_logprobs(logits, packed), old, packed)

The service returns the layout and the loss weights per node (O(nodes)); `PackedForest.from_proto` expands them
to tokens here. Definitions: ALGORITHMS.md section 12.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from treecredit import _wire
from treecredit.forest import Forest
from treecredit.topology import expand_ranges
from treecredit.v1 import packing_pb2 as ppb

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def pack_options(loss_agg_mode: str = "token-mean", max_response_length: int | None = None,
                 microbatch_tokens: int | None = None, align: int = 1) -> ppb.PackOptions:
    if loss_agg_mode not in LOSS_AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {loss_agg_mode!r}; expected one of {', '.join(LOSS_AGG_MODES)}")
    return ppb.PackOptions(
        loss_agg_mode=ppb.LossAggMode.Value("LOSS_AGG_MODE_" + loss_agg_mode.upper().replace("-", "_")),
        max_response_length=max_response_length, microbatch_tokens=microbatch_tokens, align=align)


def _array(tensor, name: str) -> np.ndarray:
    return _wire.decode(tensor, name, dtypes=(*_wire.INTEGER, *_wire.FLOAT, *_wire.MASK), ndim=1)


@dataclass
class PackedForest:
    """One microbatch (or the whole step) in packed order: T tokens, N forest nodes, P trajectories.

    Token arrays `[T]`: `input_ids`, `token_node` (forest node, -1 in padding), `parent` (packed index of the
    previous token on the path, -1 at a tree's first token and in padding: the logits row predicting t is
    `parent[t]`), `position_ids`, `subtree_end` (query q sees key k iff `k <= q < subtree_end[k]`), `loss_mask`
    (false on copied context and padding), `advantage_pos`, `advantage_neg`, `weight` (float32, 0 where the
    loss mask is false). Node arrays `[N]`: `node_start`, `node_length` (-1 and 0 for a node not held here).
    `leaf_ids [P]`: the trajectories whose tokens this microbatch owns, ascending.
    """

    input_ids: np.ndarray
    token_node: np.ndarray
    node_start: np.ndarray
    node_length: np.ndarray
    parent: np.ndarray
    position_ids: np.ndarray
    subtree_end: np.ndarray
    loss_mask: np.ndarray
    advantage_pos: np.ndarray
    advantage_neg: np.ndarray
    weight: np.ndarray
    leaf_ids: np.ndarray
    _leaf_last: np.ndarray = field(repr=False)    # packed index of each trajectory's last token, -1 if none `[P]`
    _token_index: np.ndarray = field(repr=False)  # see `token_index`

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def token_index(self) -> np.ndarray:
        """int64 `[T]`: each packed token's index in the forest's per-token arrays, -1 in padding."""
        return self._token_index

    def gather(self, forest_values) -> np.ndarray:
        """A per-token array of the forest (`forest.logprobs`, ...) in packed order `[T, ...]`, 0 in padding."""
        values = np.asarray(forest_values)
        out = values[np.maximum(self._token_index, 0)]
        out[self._token_index < 0] = 0
        return out

    def unpack(self, values) -> np.ndarray:
        """A packed `[T]` array as `[P, L_max]`: row p is trajectory `leaf_ids[p]` from its first token, zero past
        its end (the layout of `ScoreResult.padded()`)."""
        values = np.asarray(values)
        if len(values) != self.num_tokens:
            raise ValueError(f"values has {len(values)} entries for {self.num_tokens} packed tokens")
        last = self._leaf_last
        holding = last >= 0
        width = int((self.position_ids[last[holding]] + 1).max(initial=0))
        out = np.zeros((len(last), width), values.dtype)
        # Token k lies on trajectory p iff k <= last[p] < subtree_end[k]: a range of the trajectories by last token.
        by_last = np.argsort(last, kind="stable")
        sorted_last = last[by_last]
        tokens = np.arange(self.num_tokens)
        low = np.searchsorted(sorted_last, tokens, side="left")
        high = np.searchsorted(sorted_last, self.subtree_end, side="left")
        token, rank = expand_ranges(low, high)
        out[by_last[rank], self.position_ids[token]] = values[token]
        return out

    @classmethod
    def from_proto(cls, forest: Forest, response: ppb.PackResponse, align: int = 1,
                   tool_call_mask: np.ndarray | None = None) -> list[PackedForest]:
        """Every microbatch of a Pack response, expanded to tokens from the forest it was made of."""
        layout = response.layout
        fields = ("node", "owned", "start", "previous", "position", "subtree_end")
        arrays = {name: _array(getattr(layout, name), f"layout.{name}") for name in fields}
        offsets = _array(layout.microbatch_offsets, "layout.microbatch_offsets")
        tokens = _array(layout.microbatch_tokens, "layout.microbatch_tokens")
        per_node = {name: _array(getattr(response, name), name) for name in
                    ("weight", "advantage_pos", "advantage_neg", "tool_call_advantage_pos", "tool_call_advantage_neg")
                    if response.HasField(name)}
        return [cls._expand(forest, {name: values[offsets[m]:offsets[m + 1]] for name, values in arrays.items()},
                            int(tokens[m]), align, per_node, tool_call_mask)
                for m in range(len(offsets) - 1)]

    @classmethod
    def _expand(cls, forest: Forest, segment: dict[str, np.ndarray], num_tokens: int, align: int,
                per_node: dict[str, np.ndarray], tool_call_mask: np.ndarray | None) -> PackedForest:
        """Tokens from segments: every token of a segment carries its node's values."""
        node = segment["node"]
        lengths = forest.num_tokens[node]
        spread = lambda values: np.repeat(values, lengths)  # noqa: E731  a segment's value on each of its tokens
        index = np.arange(num_tokens)
        first = spread(segment["start"])
        within = index - first
        token_node = spread(node)
        token_index = spread((np.cumsum(forest.num_tokens) - forest.num_tokens)[node]) + within
        loss_mask = spread(segment["owned"])
        if forest.loss_mask is not None:
            loss_mask &= forest.loss_mask[token_index]
        on_tool_call = (None if tool_call_mask is None or "tool_call_advantage_pos" not in per_node
                        else np.asarray(tool_call_mask, bool)[token_index])

        def per_token(name: str, tool_call_name: str | None = None) -> np.ndarray:
            values = spread(per_node[name][node].astype(np.float32))
            if on_tool_call is not None and tool_call_name is not None:
                values = np.where(on_tool_call, spread(per_node[tool_call_name][node].astype(np.float32)), values)
            return np.where(loss_mask, values, np.float32(0))

        padding = -num_tokens % align
        pad = lambda values, filler: np.concatenate((values, np.full(padding, filler, values.dtype)))  # noqa: E731
        node_start = np.full(forest.num_nodes, -1, np.int64)
        node_start[node] = segment["start"]
        node_length = np.zeros(forest.num_nodes, np.int64)
        node_length[node] = lengths
        is_leaf = forest.topology.is_leaf[node] & segment["owned"]
        leaf_order = np.argsort(node[is_leaf])
        leaf_start, leaf_length = segment["start"][is_leaf][leaf_order], lengths[is_leaf][leaf_order]
        return cls(
            input_ids=pad(forest.token_ids[token_index].astype(np.int64), 0),
            token_node=pad(token_node, -1),
            node_start=node_start,
            node_length=node_length,
            parent=pad(np.where(within == 0, spread(segment["previous"]), index - 1), -1),
            position_ids=pad(spread(segment["position"]) + within, 0),
            subtree_end=np.concatenate((spread(segment["subtree_end"]),
                                        np.arange(num_tokens, num_tokens + padding) + 1)),
            loss_mask=pad(loss_mask, False),
            advantage_pos=pad(per_token("advantage_pos", "tool_call_advantage_pos"), 0),
            advantage_neg=pad(per_token("advantage_neg", "tool_call_advantage_neg"), 0),
            weight=pad(per_token("weight"), 0),
            leaf_ids=node[is_leaf][leaf_order],
            _leaf_last=np.where(leaf_length > 0, leaf_start + leaf_length - 1,
                                segment["previous"][is_leaf][leaf_order]),
            _token_index=pad(token_index, -1),
        )
