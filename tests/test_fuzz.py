"""Malformed input, fuzzed: every decoder and every RPC answers OK or INVALID_ARGUMENT / RESOURCE_EXHAUSTED /
FAILED_PRECONDITION naming the field, never INTERNAL or UNKNOWN, never a crash or a hang (every call has a
deadline), and a tensor that claims a huge shape is refused before anything is allocated.

`TREECREDIT_FUZZ_EXAMPLES` scales the number of examples (default 1: bounded for CI; try 20 for a long run).
"""

from __future__ import annotations

import os
import re

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz.strategies import forests, messages, mutated, raw_tensors, requests, tensors, valid_request, watch_events
from treecredit import _wire
from treecredit._request_errors import RequestError
from treecredit.v1 import confidence_pb2, credit_pb2, forest_pb2
from treecredit_server.codec.forest import decode_forest
from treecredit_server.config import Limits
from treecredit_server.process import start_server

SCALE = float(os.environ.get("TREECREDIT_FUZZ_EXAMPLES", "1"))
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.FAILED_PRECONDITION}
FIELD_PROBLEM = re.compile(r"^[A-Za-z_][\w.\[\]-]*: \S")
SERVICE = credit_pb2.DESCRIPTOR.services_by_name["CreditService"]
UNARY = [m.name for m in SERVICE.methods if not m.client_streaming and not m.server_streaming]
DEADLINE = 20


def fuzz(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None)


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def own_server(*args: str):
    """A server of our own, so that its memory and liveness say something about these requests alone (a module
    fixture yields from this): it must outlive the tests and stop cleanly."""
    started = start_server("--metrics-port", "-1", "--watch-session-mb", "4", "--max-shared-memory-regions", "2",
                           *args)
    started.drain_log()
    yield started
    assert started.process.poll() is None, "the server died under fuzzing"
    assert started.stop() == 0


@pytest.fixture(scope="module")
def fuzzed_server():
    yield from own_server()


@pytest.fixture(scope="module")
def channel(fuzzed_server):
    with grpc.insecure_channel(fuzzed_server.target) as opened:
        yield opened


def method(channel, name: str):
    description = SERVICE.methods_by_name[name]
    from google.protobuf import message_factory

    output = message_factory.GetMessageClass(description.output_type)
    kind = {(False, False): channel.unary_unary, (True, False): channel.stream_unary,
            (True, True): channel.stream_stream}[(description.client_streaming, description.server_streaming)]
    return kind(f"/{SERVICE.full_name}/{name}", request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=output.FromString)


def refused_properly(call) -> grpc.StatusCode:
    """Run `call`; the status it ends with, which must be OK or a refusal naming the field."""
    try:
        call()
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        assert error.code() in REFUSALS, (error.code(), error.details())
        assert FIELD_PROBLEM.match(error.details()), error.details()
        return error.code()


def message_class(name: str, *, input: bool = True):
    from google.protobuf import message_factory

    description = SERVICE.methods_by_name[name]
    return message_factory.GetMessageClass(description.input_type if input else description.output_type)


# -- decoders, in process ----------------------------------------------------------------------------
@fuzz(300)
@example(tensor=forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_INT32, shape=[0, 1 << 62]), dtypes=_wire.INTEGER, ndim=2,
         max_elements=None)  # empty, yet too large for numpy to address: was a ValueError
@given(tensor=st.one_of(raw_tensors(), tensors()), dtypes=st.sampled_from(
    [_wire.INTEGER, _wire.FLOAT, _wire.LOW_FLOAT, _wire.MASK]), ndim=st.integers(1, 2),
       max_elements=st.one_of(st.none(), st.integers(0, 64)))
def test_wire_decode_returns_what_the_bytes_hold_or_names_the_problem(tensor, dtypes, ndim, max_elements):
    try:
        array = _wire.decode(tensor, "x", dtypes=dtypes, ndim=ndim, max_elements=max_elements)
    except RequestError as error:
        assert error.field.startswith("x."), error
        return
    assert tensor.dtype in dtypes and array.ndim == ndim and list(array.shape) == list(tensor.shape)
    assert array.size * (2 if tensor.dtype == forest_pb2.DATA_TYPE_BFLOAT16 else array.itemsize) == len(tensor.data)


@fuzz(300)
@given(message=forests())
def test_decode_forest_validates_or_names_the_field(message):
    try:
        forest = decode_forest(message, Limits(max_nodes=64, max_tokens=256))
    except RequestError as error:
        assert error.field.startswith("forest."), error
        return
    n = forest.num_nodes
    assert (forest.parent < np.arange(n)).all() and (forest.parent >= -1).all()
    assert np.isfinite(forest.reward[forest.topology.is_leaf]).all()
    assert all(len(values) == forest.num_tokens.sum() for values in forest.tokens.values())


# -- every RPC, over the wire ------------------------------------------------------------------------
@pytest.mark.parametrize("name", UNARY)
def test_every_unary_rpc_refuses_malformed_requests_properly(channel, name):
    call = method(channel, name)

    @fuzz(60)
    @given(request=requests(name, message_class(name)))
    def check(request):
        refused_properly(lambda: call(request, timeout=DEADLINE))

    check()


def test_token_stats_stream_refuses_malformed_chunks_properly(channel):
    call = method(channel, "TokenStatsStream")

    def chunk_lists(seed: int):
        chunks = valid_request("TokenStatsStream", np.random.default_rng(seed))
        return st.tuples(*[st.one_of(mutated(c), st.just(c)) for c in chunks]).map(list)

    @fuzz(60)
    @given(chunks=st.one_of(st.integers(0, 2**16).flatmap(chunk_lists),
                            st.lists(messages(message_class("TokenStatsStream")), max_size=4)))
    def check(chunks):
        refused_properly(lambda: call(iter(chunks), timeout=DEADLINE))

    check()


def test_watch_event_streams_end_properly_and_account_for_every_start(channel):
    """Unknown trajectories, finishes twice, tokens after finish, mismatched chunks, a missing or second open,
    forks from unknown parents or at bad offsets: the stream gets a refusal; a stream that ends OK summarises
    exactly the trajectories it started."""
    call = method(channel, "Watch")

    @fuzz(200)
    @given(requests=watch_events())
    def check(requests):
        responses = []
        status = refused_properly(lambda: responses.extend(call(iter(requests), timeout=DEADLINE)))
        if status != grpc.StatusCode.OK or not requests:
            return
        summaries = [r.summary for r in responses if r.HasField("summary")]
        assert len(summaries) == 1 and responses[-1].HasField("summary")
        started = [s.trajectory for r in requests for s in r.starts]
        summarised = _wire.decode(summaries[0].trajectory, "trajectory", dtypes=_wire.INTEGER, ndim=1)
        assert summarised.tolist() == started  # one verdict each, in start order, none lost or repeated

    check()


@pytest.mark.parametrize("name", [m.name for m in SERVICE.methods])
def test_bytes_that_are_no_message_are_refused(channel, name):
    description = SERVICE.methods_by_name[name]
    kind = {(False, False): channel.unary_unary, (True, False): channel.stream_unary,
            (True, True): channel.stream_stream}[(description.client_streaming, description.server_streaming)]
    call = kind(f"/{SERVICE.full_name}/{name}")  # no serializers: the bytes go as they are

    @fuzz(20)
    @given(payload=st.binary(min_size=1, max_size=64))
    def check(payload):
        try:
            result = call(iter([payload]) if description.client_streaming else payload, timeout=DEADLINE)
            if description.server_streaming:
                list(result)
        except grpc.RpcError as error:
            assert error.code() in REFUSALS, (error.code(), error.details())

    check()


# -- memory ----------------------------------------------------------------------------------------
HUGE = [1 << 40]


def huge_tensor(dtype=forest_pb2.DATA_TYPE_FLOAT32, shape=(1 << 40,)) -> forest_pb2.Tensor:
    return forest_pb2.Tensor(dtype=dtype, shape=shape, data=b"\0" * 8)


def huge_requests():
    """Requests whose tensors claim terabytes in a few bytes, one per decoder that reads a tensor."""
    forest = forest_pb2.Forest(parent=_wire.encode(np.array([-1])), group=_wire.encode(np.array([0])),
                               reward=_wire.encode(np.array([1.0])))
    claims = {"parent": huge_tensor(forest_pb2.DATA_TYPE_INT64), "reward": huge_tensor(),
              "topk_logprobs": huge_tensor(shape=(1 << 30, 64)), "confidence": huge_tensor()}
    for field, tensor in claims.items():
        broken = forest_pb2.Forest()
        broken.CopyFrom(forest)
        getattr(broken, field).CopyFrom(tensor)
        yield "Score", credit_pb2.ScoreRequest(forest=broken, estimator=credit_pb2.ESTIMATOR_GRPO)
        yield "Filter", confidence_pb2.FilterRequest(forest=broken)
        yield "Pack", credit_pb2.PackRequest(score=credit_pb2.ScoreRequest(forest=broken,
                                                                           estimator=credit_pb2.ESTIMATOR_GRPO))
    yield "TokenStats", message_class("TokenStats")(logits=huge_tensor(shape=(1 << 20, 1 << 20)))
    yield "TokenStats", message_class("TokenStats")(topk_logprobs=huge_tensor(shape=(1 << 40, 8)))
    yield "Reflect", message_class("Reflect")(ell=huge_tensor(), rows=_wire.encode([1 << 20]),
                                              cols=_wire.encode([1 << 20]))
    yield "Reflect", message_class("Reflect")(rows=_wire.encode([1 << 32]), cols=_wire.encode([1 << 32]))
    yield "Filter", confidence_pb2.FilterRequest(forest=forest, answer=huge_tensor(forest_pb2.DATA_TYPE_INT64))


def test_huge_claims_are_refused_before_allocation(channel, fuzzed_server):
    pid = fuzzed_server.process.pid
    before = vm_rss_kib(pid)
    for _ in range(3):
        for name, request in huge_requests():
            status = refused_properly(lambda: method(channel, name)(request, timeout=DEADLINE))
            assert status != grpc.StatusCode.OK, name
    watch = method(channel, "Watch")
    for window in (1 << 20, 1 << 19):  # a session whose window state could never fit --watch-session-mb 4
        opened = confidence_pb2.WatchRequest(open=confidence_pb2.WatchOpen(window=window, fork_history=window))
        start = confidence_pb2.WatchRequest(starts=[confidence_pb2.TrajectoryStart(trajectory=0)])
        status = refused_properly(lambda: list(watch(iter([opened, start]), timeout=DEADLINE)))
        assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Growth this small is the interpreter's own; any of these claims allocated would be gigabytes.
    assert vm_rss_kib(pid) - before < 64 << 10


def test_the_server_still_serves_after_the_fuzzing(channel, fuzzed_server):
    assert fuzzed_server.process.poll() is None
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    forest = forest_pb2.Forest(parent=_wire.encode(np.array([-1, 0, 0])), group=_wire.encode(np.array([0, 0, 0])),
                               reward=_wire.encode(np.array([np.nan, 1.0, 0.0])))
    response = method(channel, "Score")(credit_pb2.ScoreRequest(forest=forest, estimator=credit_pb2.ESTIMATOR_GRPO),
                                        timeout=DEADLINE)
    assert len(response.leaf_advantages.shape) == 1


def test_wire_decoder_survives_coverage_guided_fuzzing(tmp_path):
    """atheris, where it is installed: a bounded run of tests/fuzz/wire_atheris.py finds no crash."""
    pytest.importorskip("atheris")
    import subprocess
    import sys
    from pathlib import Path

    harness = Path(__file__).parent / "fuzz" / "wire_atheris.py"
    runs = max(1, int(20_000 * SCALE))
    done = subprocess.run([sys.executable, str(harness), f"-runs={runs}", "-seed=1", f"-artifact_prefix={tmp_path}/"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
