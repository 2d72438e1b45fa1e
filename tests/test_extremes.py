"""The extreme-value sweep: every field of every request of every RPC (walked from the descriptors, so RPCs and
fields added later are swept too) set to int64 min/max, 2^62, 2^31, -1, 0, NaN, +-inf, empty, or a huge shape over
no data, in one entry and in every entry at once.

Each answer is a refusal (INVALID_ARGUMENT or RESOURCE_EXHAUSTED; FAILED_PRECONDITION for a shared-memory region
that is not there) whose message starts with the path of the field it changed, of a field on the way to it, or of
one it is checked against; or OK with a response whose every tensor is well formed and within the server's limits.
After each RPC's sweep the server is alive and answers the unchanged request exactly as it did before the sweep.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from fuzz.extremes import blames, message_class, substitutions
from fuzz.strategies import valid_request
from test_fuzz import FIELD_PROBLEM, SERVICE, method, own_server
import treecredit
from treecredit import _wire
from treecredit.v1 import confidence_pb2 as cpb
from treecredit.v1 import credit_pb2 as pb
from treecredit.v1 import forest_pb2
from treecredit.v1 import toolpo_pb2 as tlpb

LIMITS = {"max-nodes": 1000, "max-tokens": 10_000, "max-logits-mb": 4}
# FAILED_PRECONDITION: valid on its own, not in the state it refers to (a shared-memory region that is not
# registered, a Watch trajectory finished twice once a finish is added to an earlier request of the stream).
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION}
DEADLINE = 60


@pytest.fixture(scope="module")
def swept_server():
    yield from own_server(*(f"--{flag}={value}" for flag, value in LIMITS.items()))


@pytest.fixture(scope="module")
def channel(swept_server):
    with grpc.insecure_channel(swept_server.target) as opened:
        yield opened


def base_requests(name: str) -> list:
    """Requests the server answers OK (for a client stream, a list of messages), one per part of the API the RPC
    reads; for an RPC this file does not know, the empty message."""
    description = SERVICE.methods_by_name[name]
    extra = {"Score": method_score_requests, "Filter": reflected_filter_requests}.get(name, lambda: [])()
    if name == "Watch":
        return [watch_stream()]
    request = valid_request(name, np.random.default_rng(7))
    if request is None:
        request = message_class(description.input_type)()
    if description.client_streaming and not isinstance(request, list):
        request = [request]
    return [request, *extra]


def two_queries() -> forest_pb2.Forest:
    """Two groups: a root with three leaves, a root with two; tokens with confidences and a loss mask."""
    num_tokens = np.array([2, 1, 3, 0, 1, 2, 2])
    total = int(num_tokens.sum())
    return forest_pb2.Forest(parent=_wire.encode(np.array([-1, 0, 0, 0, -1, 4, 4])),
                             group=_wire.encode(np.array([0, 0, 0, 0, 1, 1, 1])),
                             reward=_wire.encode(np.array([np.nan, 1.0, 0.0, 0.5, np.nan, 1.0, 0.0])),
                             num_tokens=_wire.encode(num_tokens),
                             confidence=_wire.encode(np.linspace(0.5, 2.0, total)),
                             loss_mask=_wire.encode(np.arange(total) % 4 != 0))


def reflection_of_two_queries():
    rng = np.random.default_rng(3)
    return treecredit.Reflection([rng.normal(size=(3, 2)), rng.normal(size=(2, 4))]).to_proto()


def method_score_requests() -> list:
    forest = two_queries()
    is_leaf = np.array([False, True, True, True, False, True, True])
    tool_calls = tlpb.ToolCalls(action_reward=_wire.encode(np.where(is_leaf, 0.25, np.nan)),
                               tool_call_mask=_wire.encode(np.arange(11) % 3 == 0))
    srl_forest, steps = treecredit.srl_batch([["open the file", "read it"]],
                                             [[["open a file", "close it"], ["read it", None]]])
    return [pb.ScoreRequest(forest=forest, estimator=pb.ESTIMATOR_TOOLPO, tool_calls=tool_calls),
            pb.ScoreRequest(forest=srl_forest.to_proto(), estimator=pb.ESTIMATOR_SRL,
                            step_similarity=steps.to_proto()),
            pb.ScoreRequest(forest=forest, estimator=pb.ESTIMATOR_TREE_GRPO, reflection=reflection_of_two_queries())]


def reflected_filter_requests() -> list:
    return [cpb.FilterRequest(forest=two_queries(), answer=_wire.encode(np.array([-1, 0, 1, 0, -1, 1, 1])),
                              answer_labels=["a", "b"], reflection=reflection_of_two_queries(), keep_percent=50)]


def watch_stream():
    chunk = cpb.TokenChunk(trajectory=_wire.encode(np.array([0, 1])), num_tokens=_wire.encode(np.array([3, 2])),
                           confidence=_wire.encode(np.array([1.0, 2.0, 0.5, 1.5, 3.0])))
    return [cpb.WatchRequest(open=cpb.WatchOpen(threshold=1.0, window=2)),
            cpb.WatchRequest(starts=[cpb.TrajectoryStart(trajectory=0), cpb.TrajectoryStart(trajectory=1)]),
            cpb.WatchRequest(chunk=chunk),
            cpb.WatchRequest(finishes=[cpb.TrajectoryFinish(trajectory=0, answer="a")])]


def cases(name: str, base):
    """`(path, what, request)` for every substitution in the request (each message of a stream in turn)."""
    if not isinstance(base, list):
        yield from substitutions(base)
        return
    for i, message in enumerate(base):
        for path, what, changed in substitutions(message):
            yield f"requests[{i}].{path}", what, [*base[:i], changed, *base[i + 1:]]


def answer(call, description, request):
    """`(status, details, responses)` of one call."""
    try:
        if description.client_streaming:
            result = call(iter(request), timeout=DEADLINE)
            responses = list(result) if description.server_streaming else [result]
        else:
            responses = [call(request, timeout=DEADLINE)]
        return grpc.StatusCode.OK, "", responses
    except grpc.RpcError as error:
        return error.code(), error.details(), []


def well_formed(message, limit: int) -> None:
    """Every Tensor in `message` decodes (dtype, shape and bytes agree) and holds at most `limit` elements."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for item in value if field.is_repeated else (value,):
            if field.message_type is forest_pb2.Tensor.DESCRIPTOR:
                array = _wire.decode(item, field.name, dtypes=tuple(_wire._NUMPY_OF), ndim=len(item.shape),
                                     max_elements=limit)
                assert array.size <= limit
            else:
                well_formed(item, limit)


def serialized(responses) -> list[bytes]:
    return [r.SerializeToString(deterministic=True) for r in responses]


CASES = [(m.name, i) for m in SERVICE.methods for i in range(len(base_requests(m.name)))]


@pytest.mark.parametrize(("name", "base_index"), CASES, ids=[f"{name}-{i}" for name, i in CASES])
def test_every_field_of_every_request_at_its_extremes(channel, swept_server, name, base_index):
    description = SERVICE.methods_by_name[name]
    call = method(channel, name)
    base = base_requests(name)[base_index]
    before = answer(call, description, base)
    if description.input_type.name not in ("UnregisterSharedMemoryRequest", "SharedMemoryStatusRequest",
                                           "RegisterSharedMemoryRequest"):
        assert before[0] == grpc.StatusCode.OK, before[1]  # the sweep starts from an answered request
    sweep = list(cases(name, base))
    assert sweep
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda case: answer(call, description, case[2]), sweep))
    request_type = SERVICE.methods_by_name[name].input_type
    last_request = f"requests[{len(base) - 1}]." if isinstance(base, list) else ""
    unanswered, unblamed = [], []
    for (path, what, _), (status, details, responses) in zip(sweep, answers):
        if status == grpc.StatusCode.OK:
            for response in responses:
                well_formed(response, LIMITS["max-tokens"] * 64)
        elif status not in REFUSALS:
            unanswered.append(f"{path} {what}: {status.name} {details!r}")
        elif not (FIELD_PROBLEM.match(details) and blames(details, path, request_type,
                                                          later_requests=not path.startswith(last_request))):
            unblamed.append(f"{path} {what}: {status.name} {details!r}")
    assert not unanswered, f"{len(unanswered)} of {len(sweep)} not refused properly:\n" + "\n".join(unanswered[:40])
    assert not unblamed, f"{len(unblamed)} of {len(sweep)} blame another field:\n" + "\n".join(unblamed[:40])
    assert swept_server.process.poll() is None
    after = answer(call, description, base)
    assert after[0] == before[0] and serialized(after[2]) == serialized(before[2]), (before[:2], after[:2])
