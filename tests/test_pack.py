"""Pack over real gRPC (ALGORITHMS.md section 12): the layout and weights of hand-worked forests, microbatches,
the padded view, and bad input refused with the field named while the server keeps serving."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import grpc
import numpy as np
import pytest

import treecredit
from treecredit.client import pack_request
from treecredit._request_errors import ResourceExhausted
from treecredit.v1 import credit_pb2_grpc
from treecredit_server.codec.forest import decode_forest
from treecredit_server.codec.packing import decode_pack
from treecredit_server.compute import packing
from treecredit_server.config import Limits


def _load_figure_script():
    """docs/packed_figure.py, which draws the worked example of section 12 for the docs."""
    path = Path(__file__).resolve().parents[1] / "docs" / "packed_figure.py"
    spec = importlib.util.spec_from_file_location("packed_figure", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


packed_figure = _load_figure_script()
example_forest = packed_figure.example_forest  # r [p0 p1] -> a [a0] -> {c [c0], d [d0]}, and r -> b [b0 b1]


def test_the_worked_example_of_section_12(client):
    packed = client.pack(example_forest(), "grpo", loss_agg_mode="token-mean", normalize_std=False)
    assert packed.input_ids.tolist() == [100, 101, 102, 103, 104, 105, 106]
    assert packed.parent.tolist() == [-1, 0, 1, 2, 2, 1, 5]
    assert packed.position_ids.tolist() == [0, 1, 2, 3, 3, 2, 3]
    assert packed.subtree_end.tolist() == [7, 7, 5, 4, 5, 7, 7]
    assert packed.token_node.tolist() == [0, 0, 1, 2, 3, 4, 4]
    assert packed.node_start.tolist() == [0, 2, 3, 4, 5] and packed.node_length.tolist() == [2, 1, 1, 1, 2]
    assert packed.loss_mask.tolist() == [False, False, True, True, True, True, True]
    assert packed.leaf_ids.tolist() == [2, 3, 4]
    # Rewards 1, 0, 1: A = 1/3, -2/3, 1/3 (no std). |T_b| = 2, 2, 2, so token-mean weighs each token 1/6;
    # a0 lies on two trajectories (c's and d's).
    sixth = 1 / 6
    np.testing.assert_allclose(packed.weight, [0, 0, 2 * sixth, sixth, sixth, sixth, sixth], rtol=1e-6)
    np.testing.assert_allclose(packed.advantage_pos, [0, 0, sixth / 3, sixth / 3, 0, sixth / 3, sixth / 3], rtol=1e-6)
    np.testing.assert_allclose(packed.advantage_neg, [0, 0, -2 * sixth / 3, 0, -2 * sixth / 3, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(packed.unpack(packed.input_ids),
                                  [[100, 101, 102, 103], [100, 101, 102, 104], [100, 101, 105, 106]])


@pytest.mark.parametrize("mode, weight", [
    ("seq-mean-token-sum", 1 / 3),            # w_b = 1 / B
    ("seq-mean-token-mean", 1 / (3 * 2)),      # w_b = 1 / (B |T_b|)
    ("seq-mean-token-sum-norm", 1 / (3 * 5)),  # w_b = 1 / (B L), L = max_response_length
])
def test_sequence_modes_weigh_trajectories(client, mode, weight):
    extra = {"max_response_length": 5} if mode.endswith("norm") else {}
    packed = client.pack(example_forest(), "grpo", loss_agg_mode=mode, **extra)
    np.testing.assert_allclose(packed.weight, np.array([0, 0, 2, 1, 1, 1, 1]) * weight, rtol=1e-6)


def test_microbatches_own_every_token_once_and_copy_their_context(client):
    forest = example_forest()
    whole = client.pack(forest, "grpo")
    parts = client.pack(forest, "grpo", microbatch_tokens=6, align=2)
    # r a c d (5 tokens) does not fit in 6 with b; b goes with a copy of r's prompt. Padding to even lengths.
    assert [part.input_ids.tolist() for part in parts] == [[100, 101, 102, 103, 104, 0], [100, 101, 105, 106]]
    first, second = parts
    assert first.parent.tolist() == [-1, 0, 1, 2, 2, -1] and first.subtree_end.tolist() == [5, 5, 5, 4, 5, 6]
    assert second.parent.tolist() == [-1, 0, 1, 2] and second.position_ids.tolist() == [0, 1, 2, 3]
    assert second.loss_mask.tolist() == [False, False, True, True] and second.weight[:2].tolist() == [0, 0]
    assert first.leaf_ids.tolist() == [2, 3] and second.leaf_ids.tolist() == [4]
    owned = np.concatenate([part.token_index[part.loss_mask] for part in parts])
    assert sorted(owned.tolist()) == sorted(whole.token_index[whole.loss_mask].tolist())
    np.testing.assert_allclose(sorted(np.concatenate([p.weight[p.loss_mask] for p in parts])),
                               sorted(whole.weight[whole.loss_mask]))


def test_a_deep_tree_splits_at_branch_points_with_its_ancestors_copied(client):
    """A chain of 6 one-token nodes forking into 4 leaves of 3 tokens: 18 tokens in parts of at most 12."""
    forest = treecredit.Forest()
    node = forest.add(None, [1], group="q")
    for token in range(2, 7):
        node = forest.add(node, [token])
    for leaf in range(4):
        forest.add(node, [10 * leaf, 10 * leaf + 1, 10 * leaf + 2], reward=float(leaf % 2))
    parts = client.pack(forest, microbatch_tokens=12)
    assert [part.num_tokens for part in parts] == [12, 12]
    trunk = [1, 2, 3, 4, 5, 6]
    assert parts[1].input_ids.tolist() == trunk + [20, 21, 22, 30, 31, 32]
    assert parts[1].loss_mask.tolist() == [False] * 6 + [True] * 6
    assert parts[1].parent.tolist() == [-1, 0, 1, 2, 3, 4, 5, 6, 7, 5, 9, 10]
    assert parts[1].unpack(parts[1].input_ids).tolist() == [trunk + [20, 21, 22], trunk + [30, 31, 32]]


def test_unpack_gives_the_padded_layout_of_score(client):
    rng = np.random.default_rng(5)
    from forests import random_forest
    forest = random_forest(rng, groups=3, trees_per_group=2, max_depth=5)
    packed = client.pack(forest, "treerl")
    advantages, mask, leaves = client.score(forest, "treerl").padded()
    assert packed.leaf_ids.tolist() == leaves.tolist()
    np.testing.assert_array_equal(packed.unpack(packed.loss_mask), mask)
    # Each row holds the trajectory's token ids, walked here from the leaf up.
    offsets = np.concatenate(([0], np.cumsum(forest.num_tokens)))
    rows = packed.unpack(packed.input_ids)
    for row, leaf in enumerate(leaves):
        path, node = [], int(leaf)
        while node >= 0:
            path.insert(0, node)
            node = int(forest.parent[node])
        ids = np.concatenate([forest.token_ids[offsets[n]:offsets[n + 1]] for n in path])
        assert rows[row, : len(ids)].tolist() == ids.tolist() and not rows[row, len(ids):].any()


def test_async_pack_matches_the_blocking_client(server, client):
    async def packed():
        async with treecredit.AsyncCreditClient(server.target, timeout=30) as aclient:
            return await aclient.pack(example_forest(), "tree_grpo", microbatch_tokens=6)

    parts = asyncio.run(packed())
    expected = client.pack(example_forest(), "tree_grpo", microbatch_tokens=6)
    for got, want in zip(parts, expected, strict=True):
        np.testing.assert_array_equal(got.input_ids, want.input_ids)
        np.testing.assert_array_equal(got.advantage_pos, want.advantage_pos)


def without_token_ids() -> treecredit.Forest:
    forest = example_forest()
    arrays = {k: v for k, v in forest.arrays.items() if k not in ("token_ids", "group")}
    return treecredit.Forest.from_arrays(**arrays, group=np.zeros(5, np.int64))


BIG = 1 << 62
INT64_MAX = (1 << 63) - 1
BAD = {
    "no token ids": (dict(forest=without_token_ids()), grpc.StatusCode.INVALID_ARGUMENT,
                     "score.forest.token_ids: Pack needs the id of every token; node 0 has 2 tokens"),
    "microbatch smaller than a node": (dict(microbatch_tokens=1), grpc.StatusCode.INVALID_ARGUMENT,
                                       "options.microbatch_tokens: 1 tokens cannot hold node 0 of 2 tokens"),
    "trajectory longer than a microbatch": (dict(microbatch_tokens=3), grpc.StatusCode.INVALID_ARGUMENT,
                                            "options.microbatch_tokens: 3 tokens cannot hold the trajectory of leaf 2"),
    "microbatch under align": (dict(microbatch_tokens=4, align=8), grpc.StatusCode.INVALID_ARGUMENT,
                               "options.microbatch_tokens: must be >= align (8)"),
    "aligned microbatch too small": (dict(microbatch_tokens=5, align=3), grpc.StatusCode.INVALID_ARGUMENT,
                                     "options.microbatch_tokens: 5 tokens (3 after aligning to 3) cannot hold the "
                                     "trajectory of leaf 2"),
    "zero microbatch": (dict(microbatch_tokens=0), grpc.StatusCode.INVALID_ARGUMENT, "options.microbatch_tokens"),
    "negative microbatch": (dict(microbatch_tokens=-1), grpc.StatusCode.INVALID_ARGUMENT, "options.microbatch_tokens"),
    "zero align": (dict(align=0), grpc.StatusCode.INVALID_ARGUMENT, "options.align: must be >= 1, got 0"),
    "negative align": (dict(align=-5), grpc.StatusCode.INVALID_ARGUMENT, "options.align: must be >= 1"),
    "huge align": (dict(align=BIG), grpc.StatusCode.RESOURCE_EXHAUSTED, "options.align"),
    "int64 max align": (dict(align=INT64_MAX, microbatch_tokens=INT64_MAX), grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "options.align"),
    "zero max_response_length": (dict(loss_agg_mode="seq-mean-token-sum-norm", max_response_length=0),
                                 grpc.StatusCode.INVALID_ARGUMENT, "options.max_response_length: must be in"),
    "huge max_response_length": (dict(loss_agg_mode="seq-mean-token-sum-norm", max_response_length=BIG),
                                 grpc.StatusCode.INVALID_ARGUMENT, "options.max_response_length: must be in"),
    "max_response_length of another mode": (dict(max_response_length=8), grpc.StatusCode.INVALID_ARGUMENT,
                                            "options.max_response_length: is only read by seq-mean-token-sum-norm"),
    "toolpo without tool calls": (dict(estimator="toolpo"), grpc.StatusCode.INVALID_ARGUMENT,
                                  "score.tool_calls: is required"),
    "a bad forest": (dict(forest=treecredit.Forest.from_arrays([-1, 0], group=[0, 0], reward=[np.nan, np.nan],
                                                               num_tokens=[1, 1], token_ids=[1, 2])),
                     grpc.StatusCode.INVALID_ARGUMENT, "score.forest.reward[1]: leaf 1 has no reward"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_is_refused_naming_the_field(server, case):
    changes, code, message = BAD[case]
    changes = dict(changes)
    forest = changes.pop("forest", example_forest())
    estimator = changes.pop("estimator", "grpo")
    with grpc.insecure_channel(server.target) as channel:
        stub = credit_pb2_grpc.CreditServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Pack(pack_request(forest, estimator, **changes), timeout=30)
        assert error.value.code() == code
        assert error.value.details().startswith(message), error.value.details()
        assert len(stub.Pack(pack_request(example_forest(), "grpo"), timeout=30).layout.node.data) > 0


def test_unknown_loss_agg_mode_is_refused(server):
    request = pack_request(example_forest(), "grpo")
    request.options.loss_agg_mode = 9
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as error:
        credit_pb2_grpc.CreditServiceStub(channel).Pack(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("options.loss_agg_mode: unknown value 9; expected one of")
    with pytest.raises(ValueError, match="unknown loss_agg_mode 'mean'"):
        pack_request(example_forest(), "grpo", loss_agg_mode="mean")


def test_a_huge_microbatch_budget_is_one_microbatch(client):
    parts = client.pack(example_forest(), microbatch_tokens=(1 << 63) - 1)
    assert len(parts) == 1 and parts[0].num_tokens == 7


def test_copies_over_the_token_limit_are_refused_before_they_are_made():
    """A chain of 1000 one-token nodes over 1000 leaves of one token, in parts of 1001 tokens: each part copies
    the whole chain for one leaf, 1,001,000 tokens in all."""
    chain = 1000
    parent = np.concatenate((np.arange(-1, chain - 1), np.full(chain, chain - 1)))
    forest = treecredit.Forest.from_arrays(
        parent, group=np.zeros(2 * chain, np.int64), reward=np.r_[np.full(chain, np.nan), np.zeros(chain)],
        num_tokens=np.ones(2 * chain, np.int64), token_ids=np.zeros(2 * chain, np.int64))
    options = packing.PackOptions(packing.LossAggMode.TOKEN_MEAN, None, 1001, 1)
    layout = packing.layout(decode_forest(forest.to_proto(), Limits()), options)
    assert layout.microbatch_tokens.tolist() == [1001] * 1000 and layout.owned.sum() == 2 * chain
    request = pack_request(forest, "grpo", microbatch_tokens=1001)
    assert decode_pack(request, Limits(max_tokens=1_001_000)).options == options
    with pytest.raises(ResourceExhausted, match="options.microbatch_tokens: 1001000 tokens in the microbatches"):
        decode_pack(request, Limits(max_tokens=1_000_000))


def test_the_figure_in_docs_is_drawn_from_a_packed_forest(client):
    """docs/packed.svg is what docs/packed_figure.py draws from the worked example, packed now."""
    assert packed_figure.FIGURE.read_text() == packed_figure.figure(client) + "\n"


@pytest.mark.parametrize("seed", range(5))
def test_bins_hold_every_item_within_capacity_and_fill_up(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 101, int(rng.integers(1, 300)))
    bins = packing._bin_pack(sizes, 100)
    load = np.bincount(bins, weights=sizes)
    assert load.max() <= 100 and sorted(set(bins.tolist())) == list(range(len(load)))
    # No two bins could be merged: their loads are more than the capacity.
    two_lightest = np.sort(load)[:2]
    assert len(load) == 1 or two_lightest.sum() > 100
