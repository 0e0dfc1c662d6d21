"""TensorRT backend: a serialized engine run with named I/O tensors and ``execute_async_v3``.

Only API common to TensorRT 8.6 (JetPack 6.0) and 10.x is used. The engine's sidecar is checked
against this device and the bundle's ONNX file before deserializing, so an engine from another
device or model is refused with a message that says how to rebuild. Create the backend on the
inference thread and use it only there: the CUDA context is that thread's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import numpy as np

from edge.core.bundle import Bundle, sha256_of
from edge.core.errors import BackendError
from edge.runtime.backends.tensorrt.cuda import CudaContext
from edge.runtime.backends.tensorrt.engines import check_engine, current_device, read_sidecar

log = logging.getLogger(__name__)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or a clear error (a stubs-only package does not count)."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError("TensorRT is not installed (JetPack provides it on the Jetson)") from exc
    if not hasattr(trt, "Runtime"):
        raise BackendError("the installed 'tensorrt' package has no runtime (type stubs only?)")
    return trt


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
    except BackendError:
        return False
    return True


class TensorRTBackend:
    """Runs ``engine`` for ``bundle``; the Backend protocol of edge.runtime.backends.base."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, engine: Path) -> None:
        import_tensorrt()
        import tensorrt as trt

        self.spec = bundle.spec
        self.engine_path = engine
        sidecar = read_sidecar(engine)
        onnx_sha = sha256_of(bundle.path / sidecar.onnx_file)
        check_engine(engine, sidecar, current_device(), bundle.path, onnx_sha)
        self._cuda = CudaContext()
        self._closed = False
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            runtime = trt.Runtime(self._logger)
            self._engine = runtime.deserialize_cuda_engine(engine.read_bytes())
            if self._engine is None:
                raise BackendError(f"{engine}: TensorRT could not deserialize the engine; rebuild it")
            self._context = self._engine.create_execution_context()
            self._input = self._cuda.allocate(self.spec.input_shape, np.dtype(np.float32))
            self._output = self._cuda.allocate(self.spec.output_shape, np.dtype(np.float32))
            self._bind()
        except BaseException:
            self._cuda.close()
            raise
        log.info("tensorrt backend: %s (%s)", engine.name, sidecar.precision)

    def _bind(self) -> None:
        import tensorrt as trt

        expected = {
            self.spec.input_name: self.spec.input_shape,
            self.spec.output_name: self.spec.output_shape,
        }
        buffers = {self.spec.input_name: self._input, self.spec.output_name: self._output}
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        if sorted(names) != sorted(expected):
            raise BackendError(
                f"{self.engine_path}: engine tensors {names} do not match the bundle {list(expected)}"
            )
        for name in names:
            dims = self._engine.get_tensor_shape(name)
            shape = tuple(dims[i] for i in range(len(dims)))
            if shape != tuple(expected[name]):
                raise BackendError(
                    f"{self.engine_path}: tensor {name} is {shape}, the bundle says {expected[name]}"
                )
            if self._engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise BackendError(f"{self.engine_path}: tensor {name} is not float32")
            self._context.set_tensor_address(name, buffers[name].address)

    def infer(self, clip: np.ndarray) -> np.ndarray:
        if self._closed:
            raise BackendError("tensorrt backend is closed")
        self._cuda.check_thread()
        if clip.shape != self.spec.input_shape:
            raise BackendError(f"clip must be {list(self.spec.input_shape)}, got {list(clip.shape)}")
        np.copyto(self._input.host, clip, casting="same_kind")
        self._cuda.to_device(self._input)
        if not self._context.execute_async_v3(self._cuda.stream_handle):
            raise BackendError(f"{self.engine_path}: TensorRT execution failed")
        self._cuda.to_host(self._output)
        self._cuda.synchronize()
        return self._output.host

    def close(self) -> None:
        """Destroy the execution context and engine before the CUDA context they live in."""
        if self._closed:
            return
        self._closed = True
        with self._cuda.current():
            del self._context, self._engine
        self._cuda.close()
