"""Choosing and opening the inference backend named in the config.

``auto`` takes TensorRT when it imports and an engine built for this device exists (or is built,
with ``build_if_missing``), else ONNX Runtime on the CPU; the choice and its reason are logged and
kept on the returned backend's ``selection`` so that status reports can show them. ``tensorrt``
never falls back silently: without TensorRT or an engine it is an error that says what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.core.bundle import Bundle
from edge.core.errors import BackendError
from edge.runtime.backends.base import Backend

log = logging.getLogger(__name__)

CHOICES = ("auto", "tensorrt", "onnxruntime")


@dataclass(frozen=True)
class Selection:
    """Which backend runs, and why (for logs and status messages)."""

    backend: str
    requested: str
    reason: str


def _find_engine(bundle: Bundle, precision: str) -> tuple[Path, str] | str:
    """This device's engine and why, or the reason there is none (nothing is built)."""
    from edge.runtime.backends.tensorrt.backend import tensorrt_available
    from edge.runtime.backends.tensorrt.engines import current_device, select_engine

    if not tensorrt_available():
        return "TensorRT is not installed (it comes with JetPack on the Jetson)"
    wanted = None if precision == "auto" else precision
    engine = select_engine(bundle.path, current_device(), bundle.checksums(), wanted)
    if engine is None:
        label = f"{wanted} engine" if wanted else "engine"
        return (
            f"no {label} for this device in {bundle.path / 'engines'}; run "
            f"'asl-edge build {bundle.path} --precision {wanted or 'fp16'}' or set "
            "[model] build_if_missing = true"
        )
    return engine, f"engine {engine.name}"


def _engine_for(bundle: Bundle, precision: str, build_if_missing: bool) -> tuple[Path, str] | str:
    """This device's engine and why (built now when allowed), or the reason there is none."""
    from edge.runtime.backends.tensorrt.backend import tensorrt_available

    found = _find_engine(bundle, precision)
    if not isinstance(found, str) or not build_if_missing or not tensorrt_available():
        return found
    from edge.runtime.backends.tensorrt.build import build_engine

    wanted = "fp16" if precision == "auto" else precision
    log.info("building a %s TensorRT engine for this device (build_if_missing)", wanted)
    engine = build_engine(bundle.path, wanted)
    return engine, f"engine {engine.name}, built at start"


def backend_problem(bundle: Bundle, choice: str, precision: str, build_if_missing: bool) -> str | None:
    """Why ``open_backend`` would refuse ``choice`` on this machine, found without opening or
    building anything (``auto`` always finds a backend)."""
    from edge.runtime.backends.tensorrt.backend import tensorrt_available

    if choice != "tensorrt":
        return None
    found = _find_engine(bundle, precision)
    if isinstance(found, str) and not (build_if_missing and tensorrt_available()):
        return f"backend 'tensorrt': {found}"
    return None


def _open_tensorrt(bundle: Bundle, precision: str, build_if_missing: bool) -> tuple[Backend, str] | str:
    """The TensorRT backend and why, or the reason it cannot be used."""
    from edge.runtime.backends.tensorrt.backend import TensorRTBackend

    found = _engine_for(bundle, precision, build_if_missing)
    if isinstance(found, str):
        return found
    engine, reason = found
    return TensorRTBackend(bundle, engine), reason


def prepare_engine(bundle: Bundle, choice: str, precision: str, build_if_missing: bool) -> None:
    """Build the engine ``open_backend`` would build, ahead of it: the build takes minutes and needs
    no CUDA context of the inference thread, so a reload runs it on a helper thread."""
    if choice in ("auto", "tensorrt") and build_if_missing:
        _engine_for(bundle, precision, build_if_missing)


def open_backend(
    bundle: Bundle,
    choice: str = "auto",
    threads: int = 0,
    precision: str = "auto",
    build_if_missing: bool = False,
) -> tuple[Backend, Selection]:
    """Open the backend for ``bundle`` as the config asks; returns it with the selection made."""
    if choice not in CHOICES:
        raise BackendError(f"backend {choice!r} is not one of {', '.join(CHOICES)}")
    if choice in ("auto", "tensorrt"):
        opened = _open_tensorrt(bundle, precision, build_if_missing)
        if isinstance(opened, tuple):
            backend, reason = opened
            selection = Selection("tensorrt", choice, reason)
            log.info("backend: tensorrt (%s): %s", choice, reason)
            return backend, selection
        if choice == "tensorrt":
            raise BackendError(f"backend 'tensorrt': {opened}")
        fallback_reason = opened
    else:
        fallback_reason = "requested in the config"
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=threads or None)
    selection = Selection("onnxruntime", choice, fallback_reason)
    log.info("backend: onnxruntime (%s): %s", choice, fallback_reason)
    return backend, selection
