"""Tree-packed training is exact (ALGORITHMS.md section 12): a tiny causal transformer run once on the packed
forest gives the loss and the gradients of the same model run on the unpacked padded batch, whose loss is
written out here per trajectory from verl's definitions, for every estimator and loss_agg_mode, whole and in
microbatches. Float64 throughout, so any difference is a layout or weighting error, not rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import treecredit
from treecredit.torch import flex_block_mask, packed_logprobs, packed_policy_loss, tree_attention_mask

VOCAB = 23
ESTIMATORS = ("grpo", "tree_grpo", "treerl", "value_diff", "toolpo", "srl")
MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
EPS_LOW, EPS_HIGH = 0.2, 0.28


def training_forest(rng: np.random.Generator, *, groups: int = 2, trees_per_group: int = 2, max_depth: int = 8):
    """Random trees of 3-10 nodes, grown interleaved (ids are not in pre-order), depth <= max_depth: a prompt
    root of 1-4 tokens with the loss mask off, then nodes of 0-4 tokens (some empty) with a ragged loss mask."""
    trees = groups * trees_per_group
    sizes = rng.integers(3, 11, trees)
    parent, depth, tree_nodes, group = [], [], [[] for _ in range(trees)], []
    for tree in rng.permutation(np.repeat(np.arange(trees), sizes)):
        nodes = tree_nodes[tree]
        if not nodes:
            parent.append(-1), depth.append(0)
        else:
            open_nodes = [n for n in nodes if depth[n] < max_depth]
            chosen = open_nodes[-1] if rng.random() < 0.5 else open_nodes[rng.integers(len(open_nodes))]
            parent.append(chosen), depth.append(depth[chosen] + 1)
        nodes.append(len(parent) - 1)
        group.append(f"g{tree // trees_per_group}")
    n = len(parent)
    is_root = np.array(parent) < 0
    num_tokens = np.where(is_root, rng.integers(1, 5, n), rng.integers(0, 5, n))
    is_leaf = np.bincount([p for p in parent if p >= 0], minlength=n) == 0
    reward = np.where(is_leaf, rng.integers(0, 3, n) / 2, np.nan)
    token_root = np.repeat(is_root, num_tokens)
    return treecredit.Forest.from_arrays(parent, group=group, reward=reward, num_tokens=num_tokens,
                                         token_ids=rng.integers(0, VOCAB, int(num_tokens.sum())),
                                         loss_mask=~token_root & (rng.random(len(token_root)) < 0.85))


def estimator_options(forest: treecredit.Forest, estimator: str, rng: np.random.Generator) -> dict:
    if estimator == "toolpo":
        action = np.where(forest.topology.is_leaf, rng.integers(0, 3, len(forest)) / 2, np.nan)
        return {"tool_calls": treecredit.ToolCalls(action, rng.random(int(forest.num_tokens.sum())) < 0.3)}
    if estimator == "srl":
        return {"step_similarity": treecredit.StepSimilarity(
            [[f"step {k}" for k in range(9)]] * int((forest.parent < 0).sum()))}
    return {}


class TinyCausalLM(torch.nn.Module):
    """Two pre-norm attention blocks; attention obeys an explicit bool mask `[batch, S, S]` (query, key)."""

    def __init__(self, width: int = 16, heads: int = 2, layers: int = 2, positions: int = 64):
        super().__init__()
        self.heads = heads
        self.embed = torch.nn.Embedding(VOCAB, width)
        self.position = torch.nn.Embedding(positions, width)
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleDict({"norm": torch.nn.LayerNorm(width), "qkv": torch.nn.Linear(width, 3 * width),
                                 "out": torch.nn.Linear(width, width), "mlp_norm": torch.nn.LayerNorm(width),
                                 "mlp": torch.nn.Sequential(torch.nn.Linear(width, 2 * width), torch.nn.GELU(),
                                                            torch.nn.Linear(2 * width, width))})
            for _ in range(layers))
        self.head = torch.nn.Linear(width, VOCAB)

    def forward(self, ids, positions, mask):
        x = self.embed(ids) + self.position(positions)
        batch, length, width = x.shape
        for block in self.blocks:
            q, k, v = block["qkv"](block["norm"](x)).view(batch, length, 3, self.heads, -1).unbind(2)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / (width // self.heads) ** 0.5
            scores = scores.masked_fill(~mask[:, None], float("-inf"))
            x = x + block["out"](torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(batch, length, width))
            x = x + block["mlp"](block["mlp_norm"](x))
        return self.head(x)


def unpacked_loss(model, forest, score: treecredit.ScoreResult, mode: str, old: np.ndarray, tool_calls,
                  max_response_length: int | None) -> torch.Tensor:
    """verl's loss on one padded row per trajectory (leaves ascending), each row walked up the parents."""
    offsets = np.concatenate(([0], np.cumsum(forest.num_tokens)))
    rows = []  # per trajectory: (forest token indices, node of each token)
    for leaf in forest.leaves:
        path, node = [], int(leaf)
        while node >= 0:
            path.insert(0, node)
            node = int(forest.parent[node])
        tokens = [t for n in path for t in range(offsets[n], offsets[n + 1])]
        rows.append((tokens, [n for n in path for _ in range(offsets[n], offsets[n + 1])]))
    width = max(len(tokens) for tokens, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    for b, (tokens, _) in enumerate(rows):
        ids[b, : len(tokens)] = torch.as_tensor(forest.token_ids[tokens])
    positions = torch.arange(width).expand(len(rows), width)
    causal = torch.ones(width, width, dtype=torch.bool).tril().expand(len(rows), width, width)
    logits = model(ids, positions, causal)

    per_trajectory, masked_counts = [], []
    for b, (tokens, nodes) in enumerate(rows):
        leaf = int(forest.leaves[b])
        # Column c >= 1 is predicted by row c - 1; column 0 has no prediction (a prompt token here).
        columns = [c for c in range(1, len(tokens)) if forest.loss_mask[tokens[c]]]
        if score.scope == "node":
            advantage = [score.node_advantages[nodes[c]] for c in columns]
        elif score.scope == "tool_call":
            advantage = [score.leaf_advantages[leaf] + tool_calls.tool_call_mask[tokens[c]] * score.action_advantages[leaf]
                         for c in columns]
        else:
            advantage = [score.leaf_advantages[leaf]] * len(columns)
        advantage = torch.as_tensor(np.float32(advantage), dtype=torch.float64)
        index = torch.as_tensor(columns, dtype=torch.long)
        logprob = logits[b, index - 1].log_softmax(-1).gather(-1, ids[b, index][:, None])[:, 0]
        ratio = torch.exp(logprob - torch.as_tensor(old[[tokens[c] for c in columns]]))
        clipped = ratio.clamp(1 - EPS_LOW, 1 + EPS_HIGH)
        per_trajectory.append(torch.maximum(-advantage * ratio, -advantage * clipped).sum())
        masked_counts.append(len(columns))
    counted = [b for b, count in enumerate(masked_counts) if count > 0]
    sequences = len(counted)
    if mode == "token-mean":
        return sum(per_trajectory) / sum(masked_counts)
    if mode == "seq-mean-token-sum":
        return sum(per_trajectory[b] for b in counted) / sequences
    if mode == "seq-mean-token-mean":
        return sum(per_trajectory[b] / masked_counts[b] for b in counted) / sequences
    norm = max_response_length or max(masked_counts)
    return sum(per_trajectory[b] for b in counted) / (sequences * norm)


def packed_loss(model, packed: treecredit.PackedForest, old: np.ndarray) -> torch.Tensor:
    ids = torch.as_tensor(packed.input_ids)[None]
    positions = torch.as_tensor(packed.position_ids)[None]
    logits = model(ids, positions, tree_attention_mask(packed)[None])[0]
    return packed_policy_loss(packed_logprobs(logits, packed), packed.gather(old), packed, EPS_LOW, EPS_HIGH)


def gradients(model, loss_of) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad()
    loss = loss_of()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_packed_loss_and_gradients_equal_unpacked(client, estimator, mode):
    rng = np.random.default_rng([ESTIMATORS.index(estimator), MODES.index(mode)])
    forest = training_forest(rng)
    options = estimator_options(forest, estimator, rng)
    max_response_length = 40 if mode == "seq-mean-token-sum-norm" and rng.random() < 0.5 else None
    torch.manual_seed(0)
    model = TinyCausalLM().double()
    old = rng.normal(-3.0, 0.3, int(forest.num_tokens.sum()))
    score = client.score(forest, estimator, **options)

    expected, expected_grads = gradients(
        model, lambda: unpacked_loss(model, forest, score, mode, old, options.get("tool_calls"), max_response_length))
    packed = client.pack(forest, estimator, loss_agg_mode=mode, max_response_length=max_response_length, **options)
    loss, grads = gradients(model, lambda: packed_loss(model, packed, old))
    assert packed.num_tokens == int(forest.num_tokens.sum())
    assert loss == pytest.approx(expected, rel=1e-5)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5 * float(expected_grad.abs().max()))

    # Microbatches of at most M tokens after padding to 4: their losses and gradients add up to the step's.
    longest = int(forest.topology.path_sum(forest.num_tokens)[forest.leaves].max())
    budget = 4 * -(-longest // 4) + int(rng.integers(0, 3)) * 4
    parts = client.pack(forest, estimator, loss_agg_mode=mode, max_response_length=max_response_length,
                        microbatch_tokens=budget, align=4, **options)
    assert all(part.num_tokens % 4 == 0 and part.num_tokens <= budget for part in parts)
    assert sorted(np.concatenate([part.leaf_ids for part in parts])) == list(forest.leaves)
    total, summed = gradients(model, lambda: sum(packed_loss(model, part, old) for part in parts))
    assert total == pytest.approx(expected, rel=1e-5)
    for grad, expected_grad in zip(summed, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5 * float(expected_grad.abs().max()))


def test_mask_from_parent_alone_equals_the_subtree_end_mask(client):
    rng = np.random.default_rng(7)
    forest = training_forest(rng, groups=3)
    for packed in [client.pack(forest, align=8), *client.pack(forest, microbatch_tokens=48, align=8)]:
        from_parent = np.zeros((packed.num_tokens,) * 2, bool)
        for query in range(packed.num_tokens):
            key = query
            while key >= 0:  # the query, then each previous token on its path
                from_parent[query, key] = True
                key = packed.parent[key]
        np.testing.assert_array_equal(tree_attention_mask(packed).numpy(), from_parent)


def test_flex_block_mask_attends_as_the_dense_mask(client):
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    packed = client.pack(training_forest(np.random.default_rng(3), groups=4), align=16)
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 2, packed.num_tokens, 8).unbind(0)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=tree_attention_mask(packed))
    sparse = flex.flex_attention(q, k, v, block_mask=flex_block_mask(packed, block_size=16))
    torch.testing.assert_close(sparse, dense)
