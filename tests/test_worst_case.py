"""The most memory one accepted request can make the server allocate, per RPC, held to docs/SECURITY.md.

A server with small limits; per RPC, requests at those limits (the largest a client may send, and the small ones
that once made the server allocate gigabytes). Around each call the server's peak resident memory is reset
(`/proc/PID/clear_refs`) and read back (`VmHWM`): the growth must stay within the documented bound, a multiple of
the limits. The sizes are modest so that this runs in seconds; what it holds is the multiple.

The server runs with glibc's mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_`): every block over it is mapped when
allocated and unmapped when freed, so the growth is the memory the call holds at its peak, the same from run to
run. With glibc's default the threshold moves up as large blocks are freed, later ones land in a heap that keeps
what earlier calls freed, and the same call measured anywhere from 40 to 249 MiB.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from test_fuzz import method
from treecredit import _wire
from treecredit.v1 import confidence_pb2 as cpb
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import forest_pb2 as fpb
from treecredit.v1 import packing_pb2 as ppb
from treecredit.v1 import curriculum_pb2 as cupb
from treecredit.v1 import reflection_pb2 as rpb
from treecredit.v1 import tokens_pb2 as tpb
from treecredit_server.process import start_server

N, T, LOGITS_MB = 10_000, 200_000, 8
KIB = 1024
# docs/SECURITY.md, "Worst case per request": the request's own bytes REQUEST_COPIES times (gRPC's buffer, the
# parsed message, the one read of each bytes field), then bytes per node of --max-nodes, per token of
# --max-tokens and per byte of --max-logits-mb, plus a fixed allowance for allocator arenas and thread stacks.
REQUEST_COPIES = 4
BOUND = {
    "Score": (400, 800, 0),
    "Pack": (600, 1000, 0),
    "Filter": (400, 800, 0),
    "SuggestForks": (400, 800, 0),
    "Curriculum": (400, 0, 0),
    "Reflect": (100, 100, 0),
    "TokenStats": (0, 40, 4),
    "Watch": (0, 100, 0),
}
SLACK = 64 << 20
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(128 * KIB)}  # glibc's default starting threshold, held fixed


def bound(name: str, request_bytes: int) -> int:
    per_node, per_token, per_logit_byte = BOUND[name]
    return (REQUEST_COPIES * request_bytes + per_node * N + per_token * T + per_logit_byte * (LOGITS_MB << 20)
            + SLACK)


@pytest.fixture(scope="module")
def limited():
    started = start_server("--metrics-port", "-1", "--max-nodes", str(N), "--max-tokens", str(T),
                           "--max-logits-mb", str(LOGITS_MB), "--compute-threads", "1", env=MALLOC)
    started.drain_log()
    yield started
    assert started.stop() == 0


@pytest.fixture(scope="module")
def channel(limited):
    with grpc.insecure_channel(limited.target, options=[("grpc.max_send_message_length", 512 << 20),
                                                       ("grpc.max_receive_message_length", 512 << 20)]) as opened:
        yield opened


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def peak_growth(pid: int, call) -> tuple[int, object]:
    """Bytes the process's resident set grew to, at its peak during `call()`, above where it started; and what
    `call()` returned."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident set
    before = status_kib(pid, "VmRSS")
    result = call()
    return (status_kib(pid, "VmHWM") - before) * KIB, result


def forest(nodes: int, tokens: int, **token_fields) -> fpb.Forest:
    """Trees of a root and four leaves, `tokens` spread over the nodes, the per-token arrays given by name."""
    node = np.arange(nodes)
    parent = np.where(node % 5 == 0, -1, node - node % 5)
    num_tokens = np.full(nodes, tokens // nodes)
    num_tokens[: tokens % nodes] += 1
    message = fpb.Forest(parent=_wire.encode(parent), group=_wire.encode(node // 10),
                         reward=_wire.encode(np.where(parent >= 0, (node % 3) / 2, np.nan)),
                         num_tokens=_wire.encode(num_tokens))
    for name, values in token_fields.items():
        getattr(message, name).CopyFrom(_wire.encode(values))
    return message


def worst_requests():
    """`(rpc, what, request)`: requests at the limits, and the small ones that once allocated gigabytes."""
    rng = np.random.default_rng(0)
    tokens = {"confidence": rng.exponential(1.0, T), "logprobs": -rng.exponential(1.0, T),
              "loss_mask": rng.random(T) < 0.9, "token_ids": rng.integers(0, 1000, T)}
    full = forest(N, T, **tokens)
    topk = forest(N, T, topk_logprobs=-rng.exponential(1.0, (T, 64)).astype(np.float16))
    yield "Score", "N nodes, T tokens", pb.ScoreRequest(forest=full, estimator=pb.ESTIMATOR_TREERL)
    yield "Score", "N nodes, T x 64 top-k", pb.ScoreRequest(forest=topk, estimator=pb.ESTIMATOR_TREE_GRPO)
    yield "Pack", "N nodes, T tokens", pb.PackRequest(
        score=pb.ScoreRequest(forest=full, estimator=pb.ESTIMATOR_TREE_GRPO),
        options=ppb.PackOptions(loss_agg_mode=ppb.LOSS_AGG_MODE_TOKEN_MEAN))
    half = forest(N, T // 2, token_ids=rng.integers(0, 1000, T // 2))  # every tree split in two, its root copied
    yield "Pack", "N nodes, T / 2 tokens, microbatches", pb.PackRequest(
        score=pb.ScoreRequest(forest=half, estimator=pb.ESTIMATOR_TREERL),
        options=ppb.PackOptions(loss_agg_mode=ppb.LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN, microbatch_tokens=30, align=2))
    yield "Filter", "N nodes, T tokens", cpb.FilterRequest(forest=full, answer=_wire.encode(np.arange(N) % 7),
                                                           answer_labels=[str(a) for a in range(7)])
    yield "SuggestForks", "by -logprob", cpb.SuggestForksRequest(forest=full)
    yield "SuggestForks", "by window confidence", cpb.SuggestForksRequest(
        forest=full, ranking=cpb.FORK_RANKING_WINDOW_CONFIDENCE)
    node = np.arange(N)
    chain = fpb.Forest(parent=_wire.encode(node - 1), group=_wire.encode(np.zeros(N, np.int64)),
                       reward=_wire.encode(np.where(node == N - 1, 1.0, np.nan)))
    yield "Curriculum", "one trunk of depth N", cupb.CurriculumRequest(forest=chain, trunk_end=_wire.encode([N - 1]))
    rows, cols = np.full(N // 100, 100), np.full(N // 100, T // N)
    yield "Reflect", "T entries", rpb.ReflectRequest(rows=_wire.encode(rows), cols=_wire.encode(cols),
                                                     ell=_wire.encode(rng.normal(size=int((rows * cols).sum()))))
    yield "Reflect", "N rows of no columns", rpb.ReflectRequest(rows=_wire.encode([N]), cols=_wire.encode([0]),
                                                                ell=_wire.encode(np.zeros(0)))
    vocab = (LOGITS_MB << 20) // 4 // 64
    yield "TokenStats", "--max-logits-mb of logits", tpb.TokenStatsRequest(
        logits=_wire.encode(rng.normal(size=(64, vocab)).astype(np.float32)),
        ids=_wire.encode(rng.integers(0, vocab, 64)))
    yield "TokenStats", "T rows of a one-word vocabulary", tpb.TokenStatsRequest(
        logits=_wire.encode(np.zeros((T, 1), np.float16)), ids=_wire.encode(np.zeros(T, np.int32)))
    yield "TokenStats", "T x 0 top-k", tpb.TokenStatsRequest(topk_logprobs=_wire.encode(np.zeros((T, 0), np.float32)))
    trajectories = 256
    counts = np.full(trajectories, T // trajectories)
    yield "Watch", "T tokens in one chunk", [
        cpb.WatchRequest(open=cpb.WatchOpen(window=2048)),
        cpb.WatchRequest(starts=[cpb.TrajectoryStart(trajectory=t) for t in range(trajectories)]),
        cpb.WatchRequest(chunk=cpb.TokenChunk(trajectory=_wire.encode(np.arange(trajectories)),
                                              num_tokens=_wire.encode(counts),
                                              confidence=_wire.encode(rng.exponential(1.0, int(counts.sum())))))]


def send(channel, name: str, request):
    call = method(channel, name)
    try:
        return list(call(iter(request), timeout=120)) if isinstance(request, list) else call(request, timeout=120)
    except grpc.RpcError as error:
        return error


CASES = list(worst_requests())


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{name}: {what}" for name, what, _ in CASES])
def test_peak_memory_of_one_request_stays_within_the_documented_bound(channel, limited, case):
    name, what, request = CASES[case]
    send(channel, name, request)  # the first call imports torch and the kernels, and warms the allocator
    request_bytes = sum(r.ByteSize() for r in request) if isinstance(request, list) else request.ByteSize()
    grown, answered = peak_growth(limited.process.pid, lambda: send(channel, name, request))
    assert not isinstance(answered, grpc.RpcError) or answered.code() in (
        grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), answered
    print(f"{name:>13} {what:<34} request {request_bytes / 2**20:7.1f} MiB, peak +{grown / 2**20:7.1f} MiB, "
          f"bound {bound(name, request_bytes) / 2**20:7.1f} MiB")
    assert grown <= bound(name, request_bytes)
