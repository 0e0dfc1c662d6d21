"""Choosing and opening the inference backend named in the config.

``auto`` takes TensorRT when it imports and an engine built for this device exists (or is built,
with ``build_if_missing``), else OpenVINO on an x86 CPU where it is installed, else ONNX Runtime on
the CPU; the choice and its reason (why each backend before it did not apply) are logged and kept
on the returned ``selection`` so that status reports can show them. ``tensorrt`` and ``openvino``
never fall back silently: without their runtime, engine or precision they are an error that says
what to do, and so is ``bf16`` that no backend here can run.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path

from edge.core.bundle import Bundle
from edge.core.errors import BackendError
from edge.runtime.backends.base import Backend

log = logging.getLogger(__name__)

CHOICES = ("auto", "tensorrt", "openvino", "onnxruntime")
# Precisions OpenVINO runs on a CPU (fp16 is TensorRT's).
OPENVINO_PRECISIONS = ("auto", "fp32", "bf16", "int8")
X86_MACHINES = ("x86_64", "amd64", "i686", "i386")


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


def _open_openvino(
    bundle: Bundle, choice: str, precision: str, threads: int, cache_dir: Path | None
) -> tuple[Backend, str] | str:
    """The OpenVINO backend and why, or (for ``auto``) the reason it does not apply."""
    from edge.runtime.backends.openvino import OpenVinoBackend, openvino_available

    if precision not in OPENVINO_PRECISIONS:
        return f"{precision} is not an OpenVINO precision (it runs {', '.join(OPENVINO_PRECISIONS[1:])})"
    if choice == "auto":
        if platform.machine().lower() not in X86_MACHINES:
            return f"OpenVINO is for x86 CPU kiosks; this is {platform.machine()}"
        if not openvino_available():
            return "OpenVINO is not installed (pip install 'asl-edge[openvino]' on x86 kiosks)"
    backend = OpenVinoBackend(bundle, precision, threads or None, cache_dir)
    reason = f"{backend.precision}: {backend.reason}"
    return backend, reason + (", compiled model from cache" if backend.from_cache else "")


def open_backend(
    bundle: Bundle,
    choice: str = "auto",
    threads: int = 0,
    precision: str = "auto",
    build_if_missing: bool = False,
    cache_dir: Path | None = None,
) -> tuple[Backend, Selection]:
    """Open the backend for ``bundle`` as the config asks; returns it with the selection made.
    ``cache_dir`` keeps OpenVINO's compiled models (the state directory's, on a kiosk)."""
    if choice not in CHOICES:
        raise BackendError(f"backend {choice!r} is not one of {', '.join(CHOICES)}")
    reasons: list[str] = []
    if choice in ("auto", "tensorrt"):
        opened = (
            "bf16 is not a TensorRT precision"
            if precision == "bf16"
            else _open_tensorrt(bundle, precision, build_if_missing)
        )
        if isinstance(opened, tuple):
            return _selected(opened, "tensorrt", choice, reasons)
        if choice == "tensorrt":
            raise BackendError(f"backend 'tensorrt': {opened}")
        reasons.append(opened)
    if choice in ("auto", "openvino"):
        opened = _open_openvino(bundle, choice, precision, threads, cache_dir)
        if isinstance(opened, tuple):
            return _selected(opened, "openvino", choice, reasons)
        if choice == "openvino":
            raise BackendError(f"backend 'openvino': {opened}")
        reasons.append(opened)
        if precision == "bf16":
            raise BackendError(f"precision bf16 needs OpenVINO on a CPU with BF16: {'; '.join(reasons)}")
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=threads or None)
    return _selected((backend, "" if reasons else "requested in the config"), "onnxruntime", choice, reasons)


def _selected(
    opened: tuple[Backend, str], name: str, choice: str, passed_over: list[str]
) -> tuple[Backend, Selection]:
    """The selection, its reason saying why each backend tried before it did not apply."""
    backend, reason = opened
    reason = "; ".join(part for part in (*passed_over, reason) if part)
    log.info("backend: %s (%s): %s", name, choice, reason)
    return backend, Selection(name, choice, reason)
