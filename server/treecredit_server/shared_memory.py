"""System shared-memory regions that clients on this host register, so that logits need not cross gRPC.

Modelled on Triton Inference Server's system shared-memory extension: a client creates a POSIX shared-memory
object, registers bytes [offset, offset + byte_size) of it under a name, and then names the region in its
requests. Registration is bounded (`max_regions`, `max_bytes` over all regions). The server keeps no mapping
between calls: each read opens the object afresh, so an object unlinked or shrunk since registration gets
FAILED_PRECONDITION instead of stale bytes.

Python before 3.13 registers every `SharedMemory` it attaches to with the resource tracker, which unlinks the
object when this process exits; the objects are the clients', so `_attach` takes them off the tracker again
(3.13's `track=False` does the same); attaching and untracking happen under one lock so that the tracker sees
them paired even when threads read the same object at once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from typing import TypeVar

from treecredit._request_errors import FailedPrecondition, InvalidArgument, ResourceExhausted

T = TypeVar("T")
_mapping_lock = threading.Lock()  # pairs attach with untrack, and guards _lingering
_lingering: list[shared_memory.SharedMemory] = []  # mappings still in use when their read ended


@dataclass(frozen=True)
class Region:
    name: str
    key: str  # the shared-memory object's name, without the leading "/"
    offset: int
    byte_size: int


def _attach(key: str, field: str) -> shared_memory.SharedMemory:
    """Map the existing object `key`, untracked; FailedPrecondition naming `field` when it cannot be opened."""
    try:
        if sys.version_info >= (3, 13):
            return shared_memory.SharedMemory(name=key, track=False)
        with _mapping_lock:
            memory = shared_memory.SharedMemory(name=key)
            resource_tracker.unregister("/" + memory.name, "shared_memory")
            return memory
    except FileNotFoundError:
        raise FailedPrecondition(field, f"no shared-memory object {key!r} exists on the server's host") from None
    except (OSError, ValueError) as error:  # permissions; an empty object cannot be mapped
        raise FailedPrecondition(field, f"shared-memory object {key!r} cannot be mapped: {error}") from None


class SharedMemoryRegistry:
    """The regions registered with this server, by name. Thread-safe."""

    def __init__(self, max_regions: int, max_bytes: int):
        self._max_regions = max_regions
        self._max_bytes = max_bytes
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: str, offset: int, byte_size: int) -> Region:
        if not name:
            raise InvalidArgument("name", "is required")
        key = key.removeprefix("/")
        if not key or "/" in key or "\0" in key:
            raise InvalidArgument("key", f"{key!r} is not a POSIX shared-memory name (like 'psm_1a2b' or '/psm_1a2b')")
        if offset < 0:
            raise InvalidArgument("offset", f"must be >= 0, got {offset}")
        if byte_size <= 0:
            raise InvalidArgument("byte_size", f"must be > 0, got {byte_size}")
        memory = _attach(key, "key")
        try:
            if offset + byte_size > memory.size:
                raise InvalidArgument("byte_size", f"bytes [{offset}, {offset + byte_size}) lie outside object "
                                                   f"{key!r} of {memory.size} bytes")
        finally:
            memory.close()
        region = Region(name, key, offset, byte_size)
        with self._lock:
            if name in self._regions:
                raise FailedPrecondition("name", f"region {name!r} is already registered; unregister it first")
            if len(self._regions) >= self._max_regions:
                raise ResourceExhausted("name", f"{len(self._regions)} regions are registered, the limit is "
                                                f"{self._max_regions}")
            registered = sum(r.byte_size for r in self._regions.values())
            if registered + byte_size > self._max_bytes:
                raise ResourceExhausted("byte_size", f"{registered} bytes are registered; {byte_size} more exceed "
                                                     f"the limit of {self._max_bytes}")
            self._regions[name] = region
        return region

    def unregister(self, name: str) -> None:
        """Forget region `name`; a name that is not registered is not an error."""
        with self._lock:
            self._regions.pop(name, None)

    def status(self, name: str = "") -> list[Region]:
        """Region `name` (FailedPrecondition if it is not registered), or every region when `name` is empty."""
        with self._lock:
            if not name:
                return sorted(self._regions.values(), key=lambda r: r.name)
            return [self._region(name, "name")]

    def _region(self, name: str, field: str) -> Region:
        if name not in self._regions:
            raise FailedPrecondition(field, f"no shared-memory region named {name!r} is registered")
        return self._regions[name]

    def read(self, name: str, offset: int, byte_size: int, field: str, use: Callable[[memoryview], T], *,
             alignment: int = 1) -> T:
        """`use(bytes [offset, offset + byte_size) of region name)`, the region mapped for the duration of the call.

        FailedPrecondition (naming `field`.region) when the region is not registered or its object is gone or
        shrunk; InvalidArgument (naming `field`.offset or .shape) when the bytes lie outside the region or do not
        start a multiple of `alignment` bytes into the object (numpy views of them would be misaligned).
        """
        with self._lock:
            region = self._region(name, f"{field}.region")
        if not 0 <= offset <= region.byte_size:
            raise InvalidArgument(f"{field}.offset", f"must be in [0, {region.byte_size}] for region {name!r}, "
                                                     f"got {offset}")
        if offset + byte_size > region.byte_size:
            raise InvalidArgument(f"{field}.shape", f"needs bytes [{offset}, {offset + byte_size}) but region "
                                                    f"{name!r} holds {region.byte_size}")
        if (region.offset + offset) % alignment:
            raise InvalidArgument(f"{field}.offset", f"the data must start a multiple of {alignment} bytes into the "
                                                     "shared-memory object (region offset + offset)")
        memory = _attach(region.key, f"{field}.region")
        start = region.offset + offset
        try:
            if region.offset + region.byte_size > memory.size:
                raise FailedPrecondition(f"{field}.region", f"object {region.key!r} of region {name!r} shrank to "
                                                            f"{memory.size} bytes")
            return use(memory.buf[start:start + byte_size])
        finally:
            _close(memory)


def _close(memory: shared_memory.SharedMemory) -> None:
    """Unmap `memory` and any earlier mapping that arrays still pointed into when its read ended (an exception's
    traceback holds them for a while); those still in use wait for the next read."""
    with _mapping_lock:
        pending = [*_lingering, memory]
        _lingering.clear()
        for mapping in pending:
            try:
                mapping.close()
            except BufferError:
                _lingering.append(mapping)
