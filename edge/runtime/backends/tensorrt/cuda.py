"""CUDA through pycuda: the only module that imports it.

The context is created by, and belongs to, the thread that constructs ``CudaContext`` (the
inference thread), never ``pycuda.autoinit``'s import-time global. Memory is freed by ``close()``,
not by the garbage collector, so a daemon that reloads a model does not leak device memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.core.errors import BackendError


def _driver() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendError("pycuda is not installed: pip install 'asl-edge[jetson]' on the Jetson") from exc
    cuda.init()
    return cuda


def gpu_properties(device_index: int = 0) -> tuple[str, str]:
    """(name, compute capability like '8.7') of a GPU, without keeping a context."""
    cuda = _driver()
    device = cuda.Device(device_index)
    major, minor = device.compute_capability()
    return device.name(), f"{major}.{minor}"


@dataclass
class HostDeviceBuffer:
    """A pinned host array and its device twin."""

    host: np.ndarray
    device: Any

    @property
    def address(self) -> int:
        return int(self.device)


class CudaContext:
    """A context, a stream and the buffers allocated through it, for one thread."""

    def __init__(self, device_index: int = 0) -> None:
        self._cuda = _driver()
        self._context = self._cuda.Device(device_index).make_context()
        self.owner = threading.get_ident()
        self.stream = self._cuda.Stream()
        self._buffers: list[HostDeviceBuffer] = []

    def check_thread(self) -> None:
        if threading.get_ident() != self.owner:
            raise BackendError(
                "the CUDA context belongs to another thread; use the backend from the thread that opened it"
            )

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype) -> HostDeviceBuffer:
        host = self._cuda.pagelocked_empty(shape, dtype)
        buffer = HostDeviceBuffer(host, self._cuda.mem_alloc(host.nbytes))
        self._buffers.append(buffer)
        return buffer

    def to_device(self, buffer: HostDeviceBuffer) -> None:
        self._cuda.memcpy_htod_async(buffer.device, buffer.host, self.stream)

    def to_host(self, buffer: HostDeviceBuffer) -> None:
        self._cuda.memcpy_dtoh_async(buffer.host, buffer.device, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """This context on top of the thread's stack for the block. A model reload opens the new
        backend's context (on top) before the old one is closed, so closing must not assume that
        its own context is the current one."""
        self.check_thread()
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def close(self) -> None:
        """Free every buffer and release the context; safe to call twice."""
        if self._context is None:
            return
        with self.current():
            for buffer in self._buffers:
                buffer.device.free()
            self._buffers.clear()
            self.stream = None  # destroyed now, while its context is current
        # Detaching a context that is not current pushes it first (pycuda), so the context a
        # reload opened since stays current.
        self._context.detach()
        self._context = None
