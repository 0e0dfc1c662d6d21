"""OpenVINO on the CPU: the fast backend for x86 kiosks without a GPU.

OpenVINO's CPU plugin runs 3D convolutions with blocked kernels (and in INT8 or BF16 where the
CPU has the instructions), which ONNX Runtime's CPU provider does not. Every precision is asked
for explicitly and checked after compilation: OpenVINO would otherwise pick BF16 by itself on a
CPU that has it, and silently compile FP32 when BF16 is asked for on one that has not, so results
would change with the CPU model. ``fp32`` and ``bf16`` run the bundle's ONNX model; ``int8`` runs
the NNCF-quantized model ``asl-edge calibrate`` writes (the TensorRT-shaped QDQ model is not for
OpenVINO: it mis-executes convolutions that share one Q/DQ after a Concat). Compiled models are
cached in ``cache_dir`` so that a restart imports instead of compiling. ``openvino`` is imported
here only, and this module only when the backend is asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge.core.bundle import OPENVINO_INT8_FILE, Bundle
from edge.core.errors import BackendError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
# The fastest first: what ``auto`` tries, each only where the CPU has it and its gate passed.
AUTO_ORDER = ("int8", "bf16")
# OpenVINO's name of the precision the CPU plugin computes in (int8 models keep their float parts
# in FP32, the precision their accuracy gate measured).
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "int8": "INT8"}


def import_openvino() -> ModuleType:
    """The ``openvino`` module, or a clear error."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendError(
            "OpenVINO is not installed: pip install 'asl-edge[openvino]' (x86 CPU kiosks)"
        ) from exc
    return openvino


def openvino_available() -> bool:
    try:
        import_openvino()
    except BackendError:
        return False
    return True


def cpu_capabilities(core: Any) -> frozenset[str]:
    """What this CPU runs natively, as OpenVINO names it (``FP32``, ``BF16``, ``INT8``, ...)."""
    return frozenset(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def gate_results(bundle: Bundle) -> dict[str, bool | None]:
    """Whether each reduced precision passed ``asl-edge calibrate``'s accuracy gate on this bundle
    (None: never measured, e.g. BF16 calibrated on a CPU without it)."""
    section = bundle.manifest.get("openvino", {})
    results: dict[str, bool | None] = {}
    for precision in AUTO_ORDER:
        entry = section.get(precision) if isinstance(section, dict) else None
        passed = entry.get("passed") if isinstance(entry, dict) else None
        results[precision] = passed if isinstance(passed, bool) else None
    return results


def choose_precision(requested: str, capabilities: frozenset[str], bundle: Bundle) -> tuple[str, str]:
    """The precision to compile and why; an explicit request this CPU or bundle cannot honour is an
    error, never a quieter precision."""
    if requested not in PRECISIONS:
        raise BackendError(f"OpenVINO precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        if _CAPABILITY[requested] not in capabilities:
            raise BackendError(
                f"precision {requested}: this CPU has no native {_CAPABILITY[requested]} "
                f"(it offers {', '.join(sorted(capabilities))}); choose another [model] precision"
            )
        if requested == "int8" and not (bundle.path / OPENVINO_INT8_FILE).is_file():
            raise BackendError(
                f"precision int8: {bundle.path} has no {OPENVINO_INT8_FILE}; run 'asl-edge calibrate "
                f"{bundle.path}' (it writes the OpenVINO INT8 model) or choose fp32"
            )
        return requested, "requested in the config"
    gates = gate_results(bundle)
    skipped = []
    for precision in AUTO_ORDER:
        if _CAPABILITY[precision] not in capabilities:
            skipped.append(f"{precision}: CPU has no {_CAPABILITY[precision]}")
        elif gates[precision] is not True:
            state = "failed" if gates[precision] is False else "not measured"
            skipped.append(f"{precision}: accuracy gate {state}")
        elif precision == "int8" and not (bundle.path / OPENVINO_INT8_FILE).is_file():
            skipped.append(f"int8: no {OPENVINO_INT8_FILE}")
        else:
            return precision, "fastest precision this CPU has whose accuracy gate passed"
    return "fp32", "auto: " + "; ".join(skipped)


# Lines of OpenVINO's messages that say where in its C++ sources, not what is wrong.
_SOURCE_LINES = ("Exception from", "Check '", "FrontEnd API failed")


def _first_line(exc: Exception) -> str:
    """OpenVINO's message without its trail of C++ source locations."""
    lines = [line.strip() for line in str(exc).splitlines()]
    return next((line for line in lines if line and not line.startswith(_SOURCE_LINES)), type(exc).__name__)


# Each model file is read by the frontend of its format and by no other.
_FRONTENDS = {".xml": "ir", ".onnx": "onnx"}


def read_model(model_path: Path) -> Any:
    """``model_path`` (an OpenVINO IR ``.xml`` beside its ``.bin``, or an ONNX model) read by its
    own frontend only. Given a path, OpenVINO offers a file its frontend cannot read to every other
    one it has (TensorFlow, PaddlePaddle, ...), loading their libraries for that: in CI, a daemon
    that had done so for a broken bundle died of SIGSEGV moments later."""
    from openvino.frontend import FrontEndManager

    framework = _FRONTENDS.get(model_path.suffix)
    if framework is None:
        raise BackendError(f"{model_path}: OpenVINO runs IR (.xml) or ONNX models, not {model_path.suffix!r}")
    try:
        frontend = FrontEndManager().load_by_framework(framework)
        return frontend.convert(frontend.load(str(model_path)))
    except Exception as exc:  # RuntimeError, or the frontend's own GeneralFailure
        raise BackendError(
            f"{model_path}: OpenVINO cannot read the model ({framework}): {_first_line(exc)}"
        ) from exc


def compile_on_cpu(
    core: Any, model_path: Path, precision: str, threads: int, cache_dir: Path | None = None
) -> Any:
    """``model_path`` compiled for the CPU at exactly ``precision`` (checked after compiling)."""
    ov = import_openvino()
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
    }
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(cache_dir)
    model = read_model(model_path)
    try:
        compiled = core.compile_model(model, "CPU", config)
    except RuntimeError as exc:
        raise BackendError(f"{model_path}: OpenVINO cannot compile the model: {_first_line(exc)}") from exc
    computed = compiled.get_property("INFERENCE_PRECISION_HINT")
    if computed != getattr(ov.Type, _INFERENCE_PRECISION[precision]):
        raise BackendError(
            f"{model_path}: OpenVINO compiled {computed} instead of {precision}; not running at a "
            "precision nobody asked for"
        )
    return compiled


class OpenVinoBackend:
    """Runs a bundle with OpenVINO's CPU plugin; the Backend protocol of edge.backends.base."""

    name = "openvino"

    def __init__(
        self,
        bundle: Bundle,
        precision: str = "auto",
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        from edge.runtime.backends.onnxruntime import default_threads

        ov = import_openvino()
        self.spec = bundle.spec
        self.threads = threads or default_threads()
        core = ov.Core()
        self.precision, self.reason = choose_precision(precision, cpu_capabilities(core), bundle)
        if self.precision == "int8":
            model_path = bundle.path / OPENVINO_INT8_FILE
            bundle.verify_file(OPENVINO_INT8_FILE)
            bundle.verify_file(model_path.with_suffix(".bin").name)
        else:
            model_path = bundle.model_path
        compiled = compile_on_cpu(core, model_path, self.precision, self.threads, cache_dir)
        self.from_cache = bool(compiled.get_property("LOADED_FROM_CACHE"))
        self._check_io(compiled, model_path)
        self._request: Any = compiled.create_infer_request()
        log.info(
            "openvino backend: %s %s (%s), %d threads%s",
            model_path.name,
            self.precision,
            self.reason,
            self.threads,
            ", compiled model from cache" if self.from_cache else "",
        )

    def _check_io(self, compiled: Any, model_path: Path) -> None:
        spec = self.spec
        inputs, outputs = compiled.inputs, compiled.outputs
        names = ([sorted(i.get_names()) for i in inputs], [sorted(o.get_names()) for o in outputs])
        if len(inputs) != 1 or len(outputs) != 1 or spec.input_name not in inputs[0].get_names():
            raise BackendError(
                f"{model_path}: model inputs {names[0]} do not match the manifest {spec.input_name}"
            )
        if spec.output_name not in outputs[0].get_names():
            raise BackendError(
                f"{model_path}: model outputs {names[1]} do not match the manifest {spec.output_name}"
            )
        for port, expected in ((inputs[0], spec.input_shape), (outputs[0], spec.output_shape)):
            shape = tuple(int(d) for d in port.shape)
            if shape != tuple(expected):
                raise BackendError(
                    f"{model_path}: tensor {port.any_name} is {list(shape)}, the manifest says "
                    f"{list(expected)}"
                )

    def infer(self, clip: np.ndarray) -> np.ndarray:
        if clip.shape != self.spec.input_shape or clip.dtype != np.float32:
            raise BackendError(
                f"clip must be float32 {list(self.spec.input_shape)}, got {clip.dtype} {list(clip.shape)}"
            )
        if self._request is None:
            raise BackendError("openvino backend is closed")
        outputs = self._request.infer({0: np.ascontiguousarray(clip)}, share_inputs=True, share_outputs=True)
        return outputs[0]

    def close(self) -> None:
        self._request = None
