"""System shared-memory regions that clients on this host register, so that logits need not cross gRPC.

Modelled on Triton Inference Server's system shared-memory extension: a client creates a POSIX shared-memory
object, registers bytes [offset, offset + byte_size) of it under a name, and then names the region in its
requests. Registration is bounded (`max_regions`, `max_bytes` over all regions). The server keeps no mapping
between calls: each read opens the object afresh, so an object unlinked or shrunk since registration gets
FAILED_PRECONDITION instead of stale bytes.

Python before 3.13 registers every `SharedMemory` it attaches to with the resource tracker, which unlinks the
object when this process exits; the objects are the clients', so `_attach` takes them off the tracker again
(3.13's `track=False` does the same).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

from treecredit.errors import FailedPrecondition, InvalidArgument, ResourceExhausted


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
        memory = shared_memory.SharedMemory(name=key)
    except FileNotFoundError:
        raise FailedPrecondition(field, f"no shared-memory object {key!r} exists on the server's host") from None
    except (OSError, ValueError) as error:  # permissions; an empty object cannot be mapped
        raise FailedPrecondition(field, f"shared-memory object {key!r} cannot be mapped: {error}") from None
    resource_tracker.unregister("/" + memory.name, "shared_memory")
    return memory


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

    @contextmanager
    def read(self, name: str, offset: int, byte_size: int, field: str) -> Iterator[memoryview]:
        """Bytes [offset, offset + byte_size) of region `name`, mapped for the duration of the `with` block.

        FailedPrecondition (naming `field`.region) when the region is not registered or its object is gone or
        shrunk; InvalidArgument (naming `field`.offset or .shape) when the bytes lie outside the region.
        """
        with self._lock:
            region = self._region(name, f"{field}.region")
        if not 0 <= offset <= region.byte_size:
            raise InvalidArgument(f"{field}.offset", f"must be in [0, {region.byte_size}] for region {name!r}, "
                                                     f"got {offset}")
        if offset + byte_size > region.byte_size:
            raise InvalidArgument(f"{field}.shape", f"needs bytes [{offset}, {offset + byte_size}) but region "
                                                    f"{name!r} holds {region.byte_size}")
        memory = _attach(region.key, f"{field}.region")
        start = region.offset + offset
        view = None
        try:
            if region.offset + region.byte_size > memory.size:
                raise FailedPrecondition(f"{field}.region", f"object {region.key!r} of region {name!r} shrank to "
                                                            f"{memory.size} bytes")
            view = memory.buf[start:start + byte_size]
            yield view
        finally:
            _release(memory, view)


def _release(memory: shared_memory.SharedMemory, view: memoryview | None) -> None:
    """Unmap now if nothing still points into the mapping; otherwise it is unmapped when the last view goes
    (an exception's traceback may hold arrays over it for a while)."""
    try:
        if view is not None:
            view.release()
        memory.close()
    except BufferError:
        pass
