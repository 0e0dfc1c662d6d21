"""How each model file is run on one clip, for accuracy measurements on the workstation.

A runner takes a ``(1, 3, T, H, W)`` float32 clip and returns the model's logits. ONNX Runtime runs
FP32 models and the INT8 QDQ model (its quantize and dequantize steps as written around float
convolutions: the values TensorRT's INT8 engine computes with, whatever the CPU; ONNX Runtime's own
integer kernels saturate on x86 CPUs without VNNI and turned the full-size model's answers into
noise there) and an FP16 copy of a model (the stand-in for TensorRT's FP16 engine); OpenVINO runs
its INT8 model and BF16 where the CPU has it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.transformers.float16 import convert_float_to_float16

from edge.runtime.backends.onnxruntime import session_options

Runner = Callable[[np.ndarray], np.ndarray]


def write_fp16_model(model_path: Path, output_path: Path) -> None:
    """An FP16 copy of the model with float32 inputs and outputs."""
    model = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True)
    onnx.save(model, str(output_path))


def ort_runner(path: Path, input_name: str, threads: int, simulate_qdq: bool = False) -> Runner:
    options = session_options(threads)
    if simulate_qdq:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda clip: session.run(None, {input_name: clip})[0]


def openvino_runners(
    fp32_path: Path, openvino_int8_path: Path | None, threads: int
) -> tuple[dict[str, Runner], dict[str, str]]:
    """OpenVINO INT8 (when given) and BF16 (where this CPU has it), and why any is not measured."""
    from edge.runtime.backends.openvino import compile_on_cpu, cpu_capabilities, import_openvino

    ov = import_openvino()
    core = ov.Core()
    runners: dict[str, Runner] = {}
    missing: dict[str, str] = {}
    capabilities = cpu_capabilities(core)
    for name, path, precision in (
        ("openvino_int8", openvino_int8_path, "int8"),
        ("openvino_bf16", fp32_path, "bf16"),
    ):
        if path is None:
            continue
        if precision.upper() not in capabilities:
            missing[name] = f"this CPU has no {precision.upper()}"
            continue
        runners[name] = _request_runner(compile_on_cpu(core, path, precision, threads).create_infer_request())
    return runners, missing


def _request_runner(request: Any) -> Runner:
    return lambda clip: request.infer({0: clip})[0]
