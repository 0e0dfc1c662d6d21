"""TensorRT's legacy entropy calibrator: the compatibility path for INT8 without QDQ.

Deprecated since TensorRT 10.1 and removed in 11, so it lives in this one replaceable file. It
feeds the same preprocessed clips as the QDQ calibration, one at a time through a device buffer,
and keeps TensorRT's scale table in ``calibration.cache``; given only a cache, it replays it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import tensorrt as trt

from edge.core.atomic import atomic_write_bytes
from edge.core.bundle import CALIBRATION_CACHE_FILE, Bundle
from edge.runtime.backends.tensorrt.cuda import CudaContext, HostDeviceBuffer
from edge.runtime.backends.tensorrt.network import parse_onnx


class ClipEntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Batch size 1; ``clips`` may be empty when ``cache`` already exists."""

    def __init__(
        self, cache: Path, clips: Iterable[np.ndarray] = (), cuda: CudaContext | None = None
    ) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.cache = cache
        self.count = 0
        self._clips: Iterator[np.ndarray] = iter(clips)
        self._cuda = cuda
        self._buffer: HostDeviceBuffer | None = None

    def get_batch_size(self) -> int:
        return 1

    def get_batch(self, names: list[str]) -> list[int]:
        """Device pointers of the next clip; an empty list ends calibration."""
        clip = next(self._clips, None)
        if clip is None or self._cuda is None:
            return []
        if self._buffer is None:
            self._buffer = self._cuda.allocate(clip.shape, np.dtype(np.float32))
        np.copyto(self._buffer.host, clip)
        self._cuda.to_device(self._buffer)
        self._cuda.synchronize()
        self.count += 1
        return [self._buffer.address]

    def read_calibration_cache(self) -> bytes | None:
        return self.cache.read_bytes() if self.cache.is_file() else None

    def write_calibration_cache(self, cache: bytes) -> None:
        atomic_write_bytes(self.cache, bytes(cache))


def write_calibration_cache(bundle: Bundle, clips: Iterable[np.ndarray]) -> int:
    """Run TensorRT's entropy calibration on ``clips``; writes ``calibration.cache``, returns the count."""
    cache = bundle.path / CALIBRATION_CACHE_FILE
    cache.unlink(missing_ok=True)
    cuda = CudaContext()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network, _parser = parse_onnx(builder, bundle.model_path, logger)
        config = builder.create_builder_config()
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = ClipEntropyCalibrator(cache, clips, cuda)
        config.int8_calibrator = calibrator
        builder.build_serialized_network(network, config)
    finally:
        cuda.close()
    return calibrator.count
