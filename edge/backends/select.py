"""Choosing and opening the inference backend named in the config."""

from __future__ import annotations

import logging

from edge.backends.base import Backend
from edge.bundle import Bundle
from edge.errors import BackendError

log = logging.getLogger(__name__)


def open_backend(bundle: Bundle, choice: str = "auto", threads: int = 0) -> Backend:
    """Open the backend for ``bundle``; ``auto`` is ONNX Runtime on the CPU for now."""
    if choice not in ("auto", "onnxruntime"):
        raise BackendError(f"backend {choice!r} is not available; use 'auto' or 'onnxruntime'")
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=threads or None)
    log.info("backend: %s (%s), model %s", backend.name, choice, bundle.spec.model_id)
    return backend
