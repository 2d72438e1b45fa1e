"""Sizes a request implies (counts, sums of counts, products, output sizes) are checked before they are trusted.

Each class of request that once crashed the server, answered INTERNAL/UNKNOWN or blew its memory up, sent over
real gRPC to a server of its own: the refusal names the field, the server stays up, the next call is answered,
and the status the client got is the one in the log line and in the metrics.
"""

from __future__ import annotations

import json
import threading

import grpc
import numpy as np
import pytest

from scrape import sample
from treecredit import _wire
from treecredit._request_errors import InvalidArgument, ResourceExhausted
from treecredit.v1 import confidence_pb2 as cpb
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import credit_pb2_grpc
from treecredit.v1 import forest_pb2 as fpb
from treecredit.v1 import curriculum_pb2 as cupb
from treecredit.v1 import reflection_pb2 as rpb
from treecredit.v1 import srl_pb2 as srpb
from treecredit.v1 import tokens_pb2 as tpb
from treecredit_server.process import start_server

MAX_NODES, MAX_TOKENS = 1000, 100_000
WRAPS = [2**62] * 4  # sums to 2^64: 0 in int64


class LoggedServer:
    """A server whose JSON log lines are kept, so a test can read the line a call wrote."""

    def __init__(self, *args: str):
        self.started = start_server(*args)
        self.lines: list[dict] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.started.process.stdout:
            with self._changed:
                self.lines.append(json.loads(line))
                self._changed.notify_all()

    def rpc_line(self, request_id: str) -> dict:
        """The `rpc` log line of the call with `request_id`, waiting for it (it is written before the status)."""
        with self._changed:
            assert self._changed.wait_for(lambda: any(self._is(line, request_id) for line in self.lines), timeout=30)
            return next(line for line in self.lines if self._is(line, request_id))

    @staticmethod
    def _is(line: dict, request_id: str) -> bool:
        return line.get("event") == "rpc" and line.get("request_id") == request_id


@pytest.fixture(scope="module")
def logged():
    server = LoggedServer("--max-nodes", str(MAX_NODES), "--max-tokens", str(MAX_TOKENS))
    yield server
    assert server.started.process.poll() is None, "the server died"
    assert server.started.stop() == 0


@pytest.fixture(scope="module")
def stub(logged):
    with grpc.insecure_channel(logged.started.target) as channel:
        yield credit_pb2_grpc.CreditServiceStub(channel)


def tensor(values, dtype=np.int64) -> fpb.Tensor:
    return _wire.encode(np.asarray(values, dtype))


def four_node_forest(num_tokens, **tokens) -> fpb.Forest:
    """A root with three leaves, one group, `num_tokens` per node and the per-token arrays given."""
    forest = fpb.Forest(parent=tensor([-1, 0, 0, 0]), group=tensor([0, 0, 0, 0]),
                        reward=tensor([np.nan, 1.0, 0.0, 0.5], np.float64), num_tokens=tensor(num_tokens))
    for name, values in tokens.items():
        getattr(forest, name).CopyFrom(values)
    return forest


EMPTY_CONFIDENCE = tensor([], np.float64)
CASES = {
    # The four-node forest whose token counts wrap to 0 in int64: was a segmentation fault in np.repeat.
    "forks, counts that wrap": ("SuggestForks", cpb.SuggestForksRequest(forest=four_node_forest(WRAPS)),
                                "RESOURCE_EXHAUSTED", "forest.num_tokens[0]"),
    "score, counts that wrap, confidences": (
        "Score", pb.ScoreRequest(forest=four_node_forest(WRAPS, confidence=EMPTY_CONFIDENCE),
                                 estimator=pb.ESTIMATOR_GRPO), "RESOURCE_EXHAUSTED", "forest.num_tokens[0]"),
    "filter, counts that wrap, confidences": (
        "Filter", cpb.FilterRequest(forest=four_node_forest(WRAPS, confidence=EMPTY_CONFIDENCE)),
        "RESOURCE_EXHAUSTED", "forest.num_tokens[0]"),
    # A sum that wraps negative reached a Prometheus counter after an OK answer: UNKNOWN, logged as OK.
    "curriculum, counts that wrap negative": (
        "Curriculum", cupb.CurriculumRequest(forest=four_node_forest([2**62, 2**62, 2**63 - 1, 0]),
                                            trunk_end=tensor([1])), "RESOURCE_EXHAUSTED", "forest.num_tokens[0]"),
    "score, counts that wrap negative": (
        "Score", pb.ScoreRequest(forest=four_node_forest([2**62, 2**62, 2**63 - 1, 0]), estimator=pb.ESTIMATOR_GRPO),
        "RESOURCE_EXHAUSTED", "forest.num_tokens[0]"),
    # Negative counts never reach np.repeat.
    "forks, a negative count": ("SuggestForks", cpb.SuggestForksRequest(forest=four_node_forest([1, -1, 0, 0])),
                                "INVALID_ARGUMENT", "forest.num_tokens[1]"),
    # Each count within the limit, their sum over it.
    "score, a sum over the limit": (
        "Score", pb.ScoreRequest(forest=four_node_forest([MAX_TOKENS // 2 + 1] * 2 + [0, 0]),
                                 estimator=pb.ESTIMATOR_GRPO), "RESOURCE_EXHAUSTED", "forest.num_tokens"),
    # Reflect: rows unbounded when cols is 0 (a 57-byte request once took 6.4 GB), rows x cols wrapping.
    "reflect, rows with no cols": ("Reflect", rpb.ReflectRequest(rows=tensor([2**28]), cols=tensor([0]),
                                                                 ell=tensor([], np.float64)),
                                   "RESOURCE_EXHAUSTED", "rows[0]"),
    "reflect, rows x cols wraps": ("Reflect", rpb.ReflectRequest(rows=tensor([2**32]), cols=tensor([2**32]),
                                                                 ell=tensor([], np.float64)),
                                   "RESOURCE_EXHAUSTED", "rows[0]"),
    "reflect, each factor fine, the product over": (
        "Reflect", rpb.ReflectRequest(rows=tensor([MAX_NODES]), cols=tensor([MAX_TOKENS]), ell=tensor([], np.float64)),
        "RESOURCE_EXHAUSTED", "cols[0]"),
    "reflect, cols with no rows": ("Reflect", rpb.ReflectRequest(rows=tensor([0]), cols=tensor([2**40]),
                                                                 ell=tensor([], np.float64)),
                                   "RESOURCE_EXHAUSTED", "cols[0]"),
    # TokenStats: top-k of k = 0 left the row count unbounded ([1e8, 0] built an 800 MB response).
    "token stats, top-k of k = 0": (
        "TokenStats", tpb.TokenStatsRequest(topk_logprobs=fpb.Tensor(dtype=fpb.DATA_TYPE_FLOAT32, shape=[10**8, 0])),
        "RESOURCE_EXHAUSTED", "topk_logprobs.shape"),
    "token stats, no rows of a huge vocabulary": (
        "TokenStats", tpb.TokenStatsRequest(logits=fpb.Tensor(dtype=fpb.DATA_TYPE_FLOAT32, shape=[0, 2**40]),
                                            ids=tensor([])), "RESOURCE_EXHAUSTED", "logits.shape"),
    # SRL's step counts index the expert steps: their sum must not wrap either.
    "score srl, step counts that wrap": (
        "Score", pb.ScoreRequest(forest=fpb.Forest(parent=tensor([-1, 0, 0]), group=tensor([0, 0, 0]),
                                                   reward=tensor([np.nan, 1.0, 0.0], np.float64)),
                                 estimator=pb.ESTIMATOR_SRL,
                                 step_similarity=srpb.StepSimilarity(expert_steps=[], num_steps=tensor([2**62]),
                                                                    actions=["a", "b"])),
        "RESOURCE_EXHAUSTED", "step_similarity.num_steps[0]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sizes_are_checked_before_they_are_trusted(logged, stub, case):
    name, request, status, field = CASES[case]
    request_id = f"sizes-{abs(hash(case)):x}"
    with pytest.raises(grpc.RpcError) as refused:
        getattr(stub, name)(request, timeout=60, metadata=(("x-request-id", request_id),))
    assert refused.value.code().name == status, refused.value.details()
    assert refused.value.details().startswith(field + ": "), refused.value.details()
    # The status in the log and the metrics is the client's, and it was recorded before the client had it.
    assert logged.rpc_line(request_id)["status"] == status
    assert sample(logged.started.metrics_port, "treecredit_rpc_requests_total", method=name, status=status) >= 1
    assert sample(logged.started.metrics_port, "treecredit_rpc_requests_total", method=name, status="UNKNOWN") == 0
    assert_still_serving(stub)


def test_watch_chunk_counts_that_wrap_are_refused(logged, stub):
    requests = [cpb.WatchRequest(open=cpb.WatchOpen(threshold=0.5)),
                cpb.WatchRequest(starts=[cpb.TrajectoryStart(trajectory=t) for t in range(4)]),
                cpb.WatchRequest(chunk=cpb.TokenChunk(trajectory=tensor([0, 1, 2, 3]), num_tokens=tensor(WRAPS),
                                                      confidence=EMPTY_CONFIDENCE))]
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.Watch(iter(requests), timeout=60))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details().startswith("chunk.num_tokens[0]: ")
    assert_still_serving(stub)


def test_curriculum_output_cells_count_against_the_limit(stub):
    """One deep trunk and many one-step ones: few nodes, but [D, S_max + 1] output cells grow as their product."""
    depth, shallow = MAX_NODES // 3, MAX_NODES // 3
    parent = [-1] + list(range(depth))                      # the deep trunk: nodes 0..depth
    for _ in range(shallow):                                # one-step trunks: a root and its child
        parent += [-1, len(parent)]
    n = len(parent)
    is_leaf = np.bincount([p for p in parent if p >= 0], minlength=n) == 0
    forest = fpb.Forest(parent=tensor(parent), group=tensor(np.arange(n)),
                        reward=tensor(np.where(is_leaf, 1.0, np.nan), np.float64))
    trunk_end = [depth] + [depth + 2 + 2 * i for i in range(shallow)]
    with pytest.raises(grpc.RpcError) as refused:
        stub.Curriculum(cupb.CurriculumRequest(forest=forest, trunk_end=tensor(trunk_end)), timeout=60)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details().startswith(f"trunk_end: {(shallow + 1) * (depth + 1)} cells")
    assert_still_serving(stub)


def test_a_response_too_large_to_send_is_refused_under_the_status_the_log_and_metrics_show():
    """gRPC would refuse to send it after the handler had logged OK; the handler refuses it first."""
    server = LoggedServer("--max-message-mb", "1")
    try:
        n = 80_000  # int32 parents and groups, float32 rewards: 960 kB in; float64 advantages: 1.28 MB out
        parent = np.where(np.arange(n) % 2 == 0, -1, np.arange(n) - 1)
        forest = fpb.Forest(parent=tensor(parent, np.int32), group=tensor(np.arange(n) // 4, np.int32),
                            reward=tensor(np.where(parent >= 0, 1.0, np.nan), np.float32))
        with grpc.insecure_channel(server.started.target) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                credit_pb2_grpc.CreditServiceStub(channel).Score(
                    pb.ScoreRequest(forest=forest, estimator=pb.ESTIMATOR_GRPO), timeout=60,
                    metadata=(("x-request-id", "too-large"),))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details().startswith("response: ")
        assert server.rpc_line("too-large")["status"] == "RESOURCE_EXHAUSTED"
        port = server.started.metrics_port
        assert sample(port, "treecredit_rpc_requests_total", method="Score", status="RESOURCE_EXHAUSTED") == 1
        assert sample(port, "treecredit_rpc_requests_total", method="Score", status="OK") == 0
    finally:
        assert server.started.stop() == 0


def assert_still_serving(stub) -> None:
    """A root with two leaves of rewards 1 and 0: GRPO's advantages are (r - 0.5) / s with the sample std
    s = sqrt(0.5), so +-1/sqrt(2)."""
    forest = fpb.Forest(parent=tensor([-1, 0, 0]), group=tensor([0, 0, 0]),
                        reward=tensor([np.nan, 1.0, 0.0], np.float64))
    response = stub.Score(pb.ScoreRequest(forest=forest, estimator=pb.ESTIMATOR_GRPO), timeout=60)
    leaf = _wire.decode(response.leaf_advantages, "leaf_advantages", dtypes=_wire.FLOAT, ndim=1)
    np.testing.assert_allclose(leaf[1:], [0.5 ** 0.5, -(0.5 ** 0.5)], rtol=1e-5)


# -- the shared checks, in process -------------------------------------------------------------------
def test_check_sizes_checks_each_entry_before_the_exact_sum():
    assert _wire.check_sizes(np.array([3, 0, 4]), "n", 7, "tokens") == 7
    with pytest.raises(ResourceExhausted, match=r"^n\[0\]: 4611686018427387904 tokens exceed the limit of 7$"):
        _wire.check_sizes(np.array(WRAPS), "n", 7, "tokens")
    with pytest.raises(ResourceExhausted, match=r"^n: 18446744073709551616 tokens in all"):  # int64 would give 0
        _wire.check_sizes(np.array(WRAPS), "n", 2**63 - 1, "tokens")
    with pytest.raises(ResourceExhausted, match=r"^n: 8 tokens in all"):
        _wire.check_sizes(np.array([4, 4]), "n", 7, "tokens")
    with pytest.raises(InvalidArgument, match=r"^n\[1\]: is negative"):
        _wire.check_sizes(np.array([1, -1]), "n", 7, "tokens")
    assert _wire.exact_sum(np.array([2**62] * 4)) == 2**64
    assert _wire.exact_sum(np.array([2**63 - 1, 2**63 - 1, 5])) == 2 * (2**63 - 1) + 5


def test_check_products_refuses_before_multiplying():
    np.testing.assert_array_equal(_wire.check_products(np.array([3, 0, 5]), np.array([2, 2**62, 1]), "x", 6, "cells"),
                                  [6, 0, 5])
    with pytest.raises(ResourceExhausted, match=r"^x\[0\]: 4294967296 x 4294967296 = 18446744073709551616 "):
        _wire.check_products(np.array([2**32]), np.array([2**32]), "x", 2**62, "cells")  # int64 would give 0


def test_decode_bounds_every_dimension_even_when_another_is_zero():
    with pytest.raises(ResourceExhausted, match=r"^t\.shape: \[1000, 0\] has a dimension over the limit of 999 "):
        _wire.decode(fpb.Tensor(dtype=fpb.DATA_TYPE_FLOAT32, shape=[1000, 0]), "t", dtypes=_wire.FLOAT, ndim=2,
                     max_elements=999)
