"""Logits passed through POSIX shared memory to a server on the same host: no logit bytes cross gRPC.

    with treecredit.SharedLogits(client, logits) as shared:
        stats = client.token_stats(ids=ids, shared_memory=shared)
        shared.write(next_logits)  # reuse the region for logits of at most `byte_size` bytes
        stats = client.token_stats(ids=next_ids, shared_memory=shared)

With an `AsyncCreditClient`, use `async with`. The region is modelled on Triton Inference Server's system
shared-memory extension: the server maps it afresh on every call, so the client must keep it alive (inside
the `with` block) while it is in use, and must not write it while a call that reads it is in flight.
"""

from __future__ import annotations

from multiprocessing import shared_memory
from typing import NamedTuple

import numpy as np

from treecredit.tokens import wire_floats
from treecredit.v1 import forest_pb2 as fpb
from treecredit.v1 import tokens_pb2 as pb


class SharedMemoryRegion(NamedTuple):
    """A region registered with the server: bytes [offset, offset + byte_size) of shared-memory object `key`."""

    name: str
    key: str
    offset: int
    byte_size: int


def register_request(name: str, key: str, byte_size: int, offset: int = 0) -> pb.RegisterSharedMemoryRequest:
    return pb.RegisterSharedMemoryRequest(name=name, key=key, offset=offset, byte_size=byte_size)


def regions_of(response: pb.SharedMemoryStatusResponse) -> list[SharedMemoryRegion]:
    return [SharedMemoryRegion(r.name, r.key, r.offset, r.byte_size) for r in response.regions]


class SharedLogits:
    """A shared-memory object holding logits `[T, V]` (numpy or torch; float32, float16 or bfloat16), registered
    with the server for the lifetime of the `with` block.

    On entry the object is created with `byte_size` bytes (default: the logits' bytes), the logits are written
    and the region is registered under `name` (default: the object's name); on exit it is unregistered, closed
    and unlinked.
    """

    def __init__(self, client, logits=None, *, byte_size: int | None = None, name: str | None = None):
        if logits is None and byte_size is None:
            raise ValueError("give logits, byte_size or both")
        self._client = client
        self._pending = None if logits is None else wire_floats(logits)
        self.byte_size = byte_size if byte_size is not None else max(1, self._pending[0].nbytes)
        self._name = name
        self._memory: shared_memory.SharedMemory | None = None
        self.dtype, self.shape = fpb.DATA_TYPE_FLOAT32, (0, 0)

    @property
    def name(self) -> str:
        return self._name or self._memory.name

    def write(self, logits) -> None:
        """Copy `logits` into the region; later requests naming it read these."""
        self._write(*wire_floats(logits))

    def _write(self, words: np.ndarray, wire_dtype: int) -> None:
        if words.nbytes > self.byte_size:
            raise ValueError(f"{words.nbytes} bytes of logits exceed the region's {self.byte_size}")
        np.ndarray(words.shape, words.dtype, buffer=self._memory.buf)[...] = words
        self.dtype, self.shape = wire_dtype, words.shape

    def to_proto(self) -> pb.SharedMemoryTensor:
        return pb.SharedMemoryTensor(region=self.name, offset=0, dtype=self.dtype, shape=self.shape)

    def _create(self) -> tuple[str, str, int]:
        """Create and fill the object; the arguments that register it."""
        self._memory = shared_memory.SharedMemory(create=True, size=self.byte_size)
        if self._pending is not None:
            self._write(*self._pending)
            self._pending = None
        return self.name, self._memory.name, self.byte_size

    def _destroy(self) -> None:
        self._memory.close()
        self._memory.unlink()

    def __enter__(self) -> SharedLogits:
        region = self._create()
        try:
            self._client.register_shared_memory(*region)
        except BaseException:
            self._destroy()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._client.unregister_shared_memory(self.name)
        finally:
            self._destroy()

    async def __aenter__(self) -> SharedLogits:
        region = self._create()
        try:
            await self._client.register_shared_memory(*region)
        except BaseException:
            self._destroy()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self._client.unregister_shared_memory(self.name)
        finally:
            self._destroy()
