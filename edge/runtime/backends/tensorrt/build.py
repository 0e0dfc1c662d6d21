"""``asl-edge build``: a TensorRT engine for this device, with its sidecar, built on the Jetson.

FP16 and FP32 parse the bundle's ``model.onnx``; INT8 parses ``model.int8.onnx`` (explicit QDQ,
written by ``asl-edge calibrate``), or falls back to ``model.onnx`` with ``calibration.cache``
(the legacy path). Nothing degrades silently: a precision the GPU has no fast kernels for, or INT8
without either input, is an error that says what to do. A persistent timing cache makes rebuilds
fast. The engine and sidecar are written atomically, so a crash never leaves a half engine that
the daemon would try to load.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge import __version__
from edge.core.atomic import atomic_write_bytes
from edge.core.bundle import (
    CALIBRATION_CACHE_FILE,
    ENGINES_DIR,
    INT8_MODEL_FILE,
    MODEL_FILE,
    load_bundle,
    sha256_of,
)
from edge.runtime.backends.tensorrt.backend import import_tensorrt
from edge.runtime.backends.tensorrt.engines import (
    PRECISIONS,
    Sidecar,
    current_device,
    engine_path,
    write_sidecar,
)
from edge.runtime.backends.tensorrt.network import EngineBuildError, parse_onnx

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

TIMING_CACHE = "timing.cache"


def _onnx_for(bundle_dir: Path, precision: str) -> tuple[Path, Path | None]:
    """(ONNX file to parse, calibration cache or None) for ``precision``."""
    if precision != "int8":
        return bundle_dir / MODEL_FILE, None
    if (bundle_dir / INT8_MODEL_FILE).is_file():
        return bundle_dir / INT8_MODEL_FILE, None
    if (bundle_dir / CALIBRATION_CACHE_FILE).is_file():
        return bundle_dir / MODEL_FILE, bundle_dir / CALIBRATION_CACHE_FILE
    raise EngineBuildError(
        f"{bundle_dir}: INT8 needs {INT8_MODEL_FILE} or {CALIBRATION_CACHE_FILE}; "
        f"run 'asl-edge calibrate {bundle_dir} --clips ...' first"
    )


def build_engine(
    bundle_dir: Path, precision: str, workspace_mb: int = 1024, dla_core: int | None = None
) -> Path:
    """Build, write and return ``BUNDLE/engines/<trt>-<gpu>-<precision>.engine``."""
    if precision not in PRECISIONS:
        raise EngineBuildError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    import_tensorrt()
    import tensorrt as trt

    bundle = load_bundle(bundle_dir)
    device = current_device()
    onnx_path, cache = _onnx_for(bundle_dir, precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if precision == "fp16" and not builder.platform_has_fast_fp16:
        raise EngineBuildError(f"{device.gpu_name} has no fast FP16; build with --precision fp32")
    if precision == "int8" and not builder.platform_has_fast_int8:
        raise EngineBuildError(f"{device.gpu_name} has no fast INT8; build with --precision fp16")
    network, _parser = parse_onnx(builder, onnx_path, logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if cache is not None:
            from edge.runtime.backends.tensorrt.calibrator import ClipEntropyCalibrator

            config.int8_calibrator = ClipEntropyCalibrator(cache)
    if dla_core is not None:
        if dla_core >= builder.num_DLA_cores:
            raise EngineBuildError(
                f"--dla-core {dla_core}: this device has {builder.num_DLA_cores} DLA cores"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    timing_path = bundle_dir / ENGINES_DIR / TIMING_CACHE
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, False)
    started = dt.datetime.now(dt.timezone.utc)
    log.info("building %s engine from %s (minutes on a Jetson)", precision, onnx_path.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build the {precision} engine; see its log above")
    target = engine_path(bundle_dir, device, precision)
    atomic_write_bytes(target, bytes(serialized))
    atomic_write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    spec = bundle.spec
    write_sidecar(
        target,
        Sidecar(
            device=device,
            precision=precision,
            onnx_file=onnx_path.name,
            onnx_sha256=sha256_of(onnx_path),
            inputs={spec.input_name: list(spec.input_shape)},
            outputs={spec.output_name: list(spec.output_shape)},
            built_at=started.isoformat(timespec="seconds"),
            tool_version=__version__,
        ),
    )
    return target
