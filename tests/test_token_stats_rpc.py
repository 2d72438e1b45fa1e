"""TokenStats over real gRPC: inline, streamed and shared-memory logits, top-k log-probs, and bad requests,
against the kernels' float64 references."""

from __future__ import annotations

import asyncio
from multiprocessing import shared_memory

import grpc
import numpy as np
import pytest
import torch
from kernels.test_token_stats import token_stats_reference
from kernels.test_topk_confidence import topk_confidence_reference
from treecredit_server.process import start_server

import treecredit
from treecredit import tokens as sdk_tokens
from treecredit.v1 import credit_pb2_grpc, forest_pb2
from treecredit.v1 import tokens_pb2 as pb

STATS = ("logprob", "entropy", "confidence", "logsumexp")


def random_logits(rng, rows: int, vocab: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits with a few masked (-inf) entries per row and sampled ids that are never masked."""
    logits = torch.from_numpy(rng.normal(0, 3, (rows, vocab))).to(dtype)
    ids = torch.from_numpy(rng.integers(0, vocab, rows))
    masked = torch.from_numpy(rng.random((rows, vocab)) < 0.05)
    masked[torch.arange(rows), ids] = False
    return logits.masked_fill(masked, float("-inf")), ids


def assert_matches(result, logits, ids, *, k=20, temperature=1.0):
    expected = token_stats_reference(logits, ids, k=k, temperature=temperature)
    for name in STATS:
        got = getattr(result, name)
        assert got.dtype == np.float32 and got.shape == (len(ids),)
        np.testing.assert_allclose(got, getattr(expected, name).numpy(), rtol=2e-5, atol=2e-5, err_msg=name)


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield credit_pb2_grpc.CreditServiceStub(channel)


def assert_status(call, code: grpc.StatusCode, field: str):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == code, raised.value.details()
    assert raised.value.details().startswith(field), raised.value.details()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_unary_logits_match_the_reference(client, dtype):
    rng = np.random.default_rng(1)
    logits, ids = random_logits(rng, 13, 1003, dtype)
    assert_matches(client.token_stats(logits, ids, k=7, temperature=0.7), logits, ids, k=7, temperature=0.7)


def test_numpy_inputs_and_k_above_vocabulary(client):
    rng = np.random.default_rng(2)
    logits, ids = random_logits(rng, 5, 33)
    result = client.token_stats(logits.numpy(), ids.numpy().astype(np.int32), k=64)
    assert_matches(result, logits, ids, k=64)
    assert result.entropy_topk is None


def test_empty_logits(client):
    result = client.token_stats(np.zeros((0, 17), np.float32), np.zeros(0, np.int64))
    assert all(getattr(result, name).shape == (0,) for name in STATS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_streamed_logits_match_the_reference(client, dtype):
    rng = np.random.default_rng(3)
    logits, ids = random_logits(rng, 11, 777, dtype)
    assert_matches(client.token_stats(logits, ids, chunk_rows=4, k=3), logits, ids, k=3)


def test_ragged_chunks_are_joined_in_order(stub):
    rng = np.random.default_rng(4)
    logits, ids = random_logits(rng, 12, 999, torch.float16)
    chunks, start = [], 0
    for rows in (5, 1, 0, 6):
        chunk = pb.TokenStatsChunk(k=5, temperature=1.3) if not chunks else pb.TokenStatsChunk()
        treecredit._wire.encode(logits[start:start + rows].numpy(), into=chunk.logits)
        treecredit._wire.encode(ids[start:start + rows].numpy(), into=chunk.ids)
        chunks.append(chunk)
        start += rows
    result = sdk_tokens.TokenStatsResult.from_proto(stub.TokenStatsStream(iter(chunks), timeout=60))
    assert_matches(result, logits, ids, k=5, temperature=1.3)


def test_large_logits_stream_automatically(client, monkeypatch):
    rng = np.random.default_rng(5)
    logits, ids = random_logits(rng, 9, 500)
    monkeypatch.setattr(sdk_tokens, "STREAM_BYTES", 4000)
    monkeypatch.setattr(sdk_tokens, "CHUNK_BYTES", 6000)
    method, chunks = sdk_tokens.token_stats_call(logits, ids)
    assert method == "TokenStatsStream" and len(list(chunks)) == 3  # 3 rows of 2000 bytes per chunk
    assert_matches(client.token_stats(logits, ids), logits, ids)


def test_topk_logprobs_match_the_reference(client):
    rng = np.random.default_rng(6)
    topk = -np.sort(rng.exponential(2.0, (10, 20)), axis=1).astype(np.float32)
    topk[3, 15:] = -np.inf  # padding
    result = client.token_stats(topk_logprobs=torch.from_numpy(topk).bfloat16())
    expected = topk_confidence_reference(torch.from_numpy(topk).bfloat16())
    np.testing.assert_allclose(result.confidence, expected.confidence.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.entropy_topk, expected.entropy_topk.numpy(), rtol=1e-5, atol=1e-6)
    assert result.logprob is None


def test_shared_memory_logits(client):
    rng = np.random.default_rng(7)
    logits, ids = random_logits(rng, 6, 301, torch.bfloat16)
    with treecredit.SharedLogits(client, logits, byte_size=1 << 16, name="logits-a") as shared:
        assert client.shared_memory_status("logits-a") == [
            treecredit.SharedMemoryRegion("logits-a", shared._memory.name, 0, 1 << 16)]
        assert_matches(client.token_stats(ids=ids, shared_memory=shared, k=4), logits, ids, k=4)
        logits, ids = random_logits(rng, 9, 257, torch.float16)
        shared.write(logits)
        assert_matches(client.token_stats(ids=ids, shared_memory=shared), logits, ids)
    assert client.shared_memory_status() == []


def test_async_client(server):
    rng = np.random.default_rng(8)
    logits, ids = random_logits(rng, 4, 129)

    async def main():
        async with treecredit.AsyncCreditClient(server.target, timeout=60) as aclient:
            inline = await aclient.token_stats(logits, ids, chunk_rows=3)
            async with treecredit.SharedLogits(aclient, logits) as shared:
                shared_result = await aclient.token_stats(ids=ids, shared_memory=shared)
            return inline, shared_result, await aclient.shared_memory_status()

    inline, shared_result, regions = asyncio.run(main())
    assert_matches(inline, logits, ids)
    assert_matches(shared_result, logits, ids)
    assert regions == []


@pytest.fixture
def segment():
    memory = shared_memory.SharedMemory(create=True, size=4096)
    yield memory
    memory.close()
    try:
        memory.unlink()
    except FileNotFoundError:
        pass


def shared_request(region: str, shape, *, offset=0, dtype=forest_pb2.DATA_TYPE_FLOAT32, rows=None):
    request = pb.TokenStatsRequest(shared_logits=pb.SharedMemoryTensor(region=region, offset=offset, dtype=dtype,
                                                                       shape=shape))
    treecredit._wire.encode(np.zeros(shape[0] if rows is None else rows, np.int64), into=request.ids)
    return request


def test_shared_memory_errors(client, stub, segment):
    failed, invalid = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT
    assert_status(lambda: client.token_stats(ids=[0], shared_memory=_Named("nobody")), failed, "shared_logits.region")
    assert_status(lambda: client.register_shared_memory("x", "treecredit-no-such-object", 64), failed, "key")
    assert_status(lambda: client.register_shared_memory("x", segment.name, 8192), invalid, "byte_size")
    assert_status(lambda: client.register_shared_memory("x", segment.name, 64, offset=4090), invalid, "byte_size")
    assert_status(lambda: client.register_shared_memory("", segment.name, 64), invalid, "name")
    assert_status(lambda: client.register_shared_memory("x", "a/b", 64), invalid, "key")

    client.register_shared_memory("small", segment.name, 1024, offset=512)
    try:
        assert_status(lambda: client.register_shared_memory("small", segment.name, 64), failed, "name")
        np.ndarray((4, 64), np.float32, buffer=segment.buf, offset=512)[...] = 1.0
        result = sdk_tokens.TokenStatsResult.from_proto(stub.TokenStats(shared_request("small", [4, 64])))
        np.testing.assert_allclose(result.logprob, -np.log(64), rtol=1e-6)
        assert_status(lambda: stub.TokenStats(shared_request("small", [5, 64])), invalid, "shared_logits.shape")
        assert_status(lambda: stub.TokenStats(shared_request("small", [1, 1], offset=2048)), invalid,
                      "shared_logits.offset")
        assert_status(lambda: stub.TokenStats(shared_request("small", [1, 1], offset=2)), invalid,
                      "shared_logits.offset")  # misaligned float32
        assert_status(lambda: stub.TokenStats(shared_request("small", [1, 2, 3])), invalid, "shared_logits.shape")
        assert_status(lambda: stub.TokenStats(shared_request("small", [4, 64], dtype=forest_pb2.DATA_TYPE_INT64)),
                      invalid, "shared_logits.dtype")
        assert_status(lambda: stub.TokenStats(shared_request("small", [4, 64], rows=3)), invalid, "ids.shape")
        segment.unlink()  # the client removed the object but did not unregister it
        assert_status(lambda: stub.TokenStats(shared_request("small", [4, 64])), failed, "shared_logits.region")
    finally:
        client.unregister_shared_memory("small")
    client.unregister_shared_memory("small")  # not registered: not an error
    assert_status(lambda: client.shared_memory_status("small"), failed, "name")


class _Named:
    """A stand-in for SharedLogits that names a region the server does not know."""

    def __init__(self, region: str):
        self.region = region

    def to_proto(self):
        return pb.SharedMemoryTensor(region=self.region, dtype=forest_pb2.DATA_TYPE_FLOAT32, shape=[1, 4])


def test_bad_requests_name_the_field(client, stub):
    rng = np.random.default_rng(9)
    logits, ids = random_logits(rng, 3, 10)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_status(lambda: client.token_stats(logits, ids + 10), invalid, "ids[0]")
    assert_status(lambda: client.token_stats(logits, ids[:2]), invalid, "ids.shape")
    assert_status(lambda: client.token_stats(logits, ids, k=0), invalid, "k")
    assert_status(lambda: client.token_stats(logits, ids, k=65), invalid, "k")
    for temperature in (0.0, -1.0, float("nan"), float("inf")):
        assert_status(lambda: client.token_stats(logits, ids, temperature=temperature), invalid, "temperature")
    assert_status(lambda: client.token_stats(np.zeros((2, 0), np.float32), [0, 0]), invalid, "logits.shape")
    assert_status(lambda: client.token_stats(topk_logprobs=[[0.0, np.nan]]), invalid, "topk_logprobs[0]")
    assert_status(lambda: client.token_stats(topk_logprobs=np.zeros((2, 65))), invalid, "topk_logprobs.shape")

    def raw(**fields):
        return lambda: stub.TokenStats(pb.TokenStatsRequest(**fields))

    float64 = forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_FLOAT64, shape=[1, 2], data=bytes(16))
    three_d = forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_FLOAT32, shape=[1, 2, 1], data=bytes(8))
    short = forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_FLOAT32, shape=[1, 2], data=bytes(7))
    one_id = treecredit._wire.encode(np.zeros(1, np.int64))
    assert_status(raw(), invalid, "input")
    assert_status(raw(logits=float64, ids=one_id), invalid, "logits.dtype")
    assert_status(raw(logits=three_d, ids=one_id), invalid, "logits.shape")
    assert_status(raw(logits=short, ids=one_id), invalid, "logits.data")
    assert_status(raw(logits=forest_pb2.Tensor(dtype=forest_pb2.DATA_TYPE_FLOAT32, shape=[1, 2], data=bytes(8))),
                  invalid, "ids")
    topk = treecredit._wire.encode(np.zeros((1, 2), np.float32))
    assert_status(raw(topk_logprobs=topk, ids=one_id), invalid, "ids")
    assert_status(raw(topk_logprobs=topk, k=3), invalid, "k")
    assert_matches(client.token_stats(logits, ids), logits, ids)  # still serving


def test_bad_streams_name_the_chunk(stub):
    def chunk(rows, vocab, dtype=np.float32, **options):
        message = pb.TokenStatsChunk(**options)
        treecredit._wire.encode(np.zeros((rows, vocab), dtype), into=message.logits)
        treecredit._wire.encode(np.zeros(rows, np.int64), into=message.ids)
        return message

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_status(lambda: stub.TokenStatsStream(iter([])), invalid, "chunks")
    assert_status(lambda: stub.TokenStatsStream(iter([chunk(2, 8), chunk(2, 9)])), invalid, "chunks[1].logits.shape")
    assert_status(lambda: stub.TokenStatsStream(iter([chunk(2, 8), chunk(2, 8, np.float16)])), invalid,
                  "chunks[1].logits.dtype")
    assert_status(lambda: stub.TokenStatsStream(iter([chunk(2, 8), chunk(2, 8, k=3)])), invalid, "chunks[1].k")
    assert_status(lambda: stub.TokenStatsStream(iter([chunk(1, 8, k=99)])), invalid, "chunks[0].k")
    assert_status(lambda: stub.TokenStatsStream(iter([chunk(1, 8), pb.TokenStatsChunk()])), invalid,
                  "chunks[1].logits")


def test_limits():
    limited = start_server("--max-logits-mb", "1", "--max-shared-memory-regions", "1", "--max-shared-memory-mb", "1")
    limited.drain_log()
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    try:
        with treecredit.CreditClient(limited.target, timeout=60) as client:
            logits = np.zeros((3, 100_000), np.float32)  # 1.2 MB
            ids = np.zeros(3, np.int64)
            assert_status(lambda: client.token_stats(logits, ids), exhausted, "logits.shape")
            assert_status(lambda: client.token_stats(logits, ids, chunk_rows=2), exhausted, "chunks[1].logits.shape")
            with treecredit.SharedLogits(client, byte_size=1000, name="one"):
                assert_status(lambda: treecredit.SharedLogits(client, byte_size=1000).__enter__(), exhausted, "name")
            assert_status(lambda: treecredit.SharedLogits(client, byte_size=2 << 20).__enter__(), exhausted,
                          "byte_size")
    finally:
        assert limited.stop() == 0
