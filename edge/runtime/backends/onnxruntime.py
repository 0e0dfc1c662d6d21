"""ONNX Runtime on the CPU: the embedded default backend.

Tuned for one clip at a time on a small CPU: all graph optimisations, one intra-op thread per
core, the memory arena and memory patterns (the shapes never change), and I/O binding onto a
preallocated output so that no result array is allocated per call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.core.bundle import ModelSpec
from edge.core.errors import BackendError

log = logging.getLogger(__name__)


def default_threads() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. under systemd or Docker)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    options.log_severity_level = 3
    return options


class OnnxRuntimeBackend:
    """Runs a bundle's ONNX model with ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, spec: ModelSpec, threads: int | None = None) -> None:
        self.spec = spec
        self.threads = threads or default_threads()
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(model_path), session_options(self.threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime's pybind errors share no base class but Exception
            raise BackendError(f"{model_path}: ONNX Runtime cannot load the model: {exc}") from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if [i.name for i in inputs] != [spec.input_name] or outputs[0].name != spec.output_name:
            raise BackendError(
                f"{model_path}: model I/O {[i.name for i in inputs]} -> {outputs[0].name} does not "
                f"match the manifest ({spec.input_name} -> {spec.output_name})"
            )
        if tuple(inputs[0].shape) != spec.input_shape:
            raise BackendError(
                f"{model_path}: model input shape {inputs[0].shape} does not match the manifest "
                f"{list(spec.input_shape)}"
            )
        self._output = np.empty(spec.output_shape, dtype=np.float32)
        self._binding = self._session.io_binding()
        self._binding.bind_output(
            spec.output_name, "cpu", 0, np.float32, list(spec.output_shape), self._output.ctypes.data
        )
        log.info("onnxruntime backend: %s, %d threads", model_path.name, self.threads)

    def infer(self, clip: np.ndarray) -> np.ndarray:
        if clip.shape != self.spec.input_shape or clip.dtype != np.float32:
            raise BackendError(
                f"clip must be float32 {list(self.spec.input_shape)}, got {clip.dtype} {list(clip.shape)}"
            )
        if self._session is None:
            raise BackendError("onnxruntime backend is closed")
        self._binding.bind_cpu_input(self.spec.input_name, np.ascontiguousarray(clip))
        self._session.run_with_iobinding(self._binding)
        return self._output

    def close(self) -> None:
        if self._session is None:
            return
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()
        self._session = None
