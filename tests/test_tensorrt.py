"""TensorRT on the device: build FP16/INT8 engines, load, infer, verify against ONNX Runtime.

These run as-is on a Jetson (``pytest -m tensorrt``) and skip, with the reason shown, wherever
TensorRT, pycuda or a GPU is missing (every machine of our CI).
"""

import shutil
from pathlib import Path

import pytest

from edge.runtime.backends.tensorrt.backend import tensorrt_available

ROOT = Path(__file__).resolve().parent.parent


def _gpu_problem() -> str | None:
    if not tensorrt_available():
        return "TensorRT is not installed (JetPack provides it on a Jetson)"
    try:
        from edge.runtime.backends.tensorrt.cuda import gpu_properties

        gpu_properties()
    except Exception as exc:  # pycuda missing or no CUDA device: any of them means no GPU here
        return f"no usable CUDA GPU: {exc}"
    return None


PROBLEM = _gpu_problem()
pytestmark = [pytest.mark.tensorrt, pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo bundle (with its QDQ model) to build engines into."""
    target = tmp_path_factory.mktemp("trt") / "bundle"
    shutil.copytree(ROOT / "edge" / "demo" / "bundle", target)
    return target


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_build_load_infer_and_verify(bundle_dir, precision):
    from calibration.verify import compare_backends
    from convert.sources import open_source
    from edge.core.bundle import load_bundle
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from edge.runtime.backends.tensorrt.backend import TensorRTBackend
    from edge.runtime.backends.tensorrt.build import build_engine
    from edge.runtime.backends.tensorrt.engines import read_sidecar

    engine = build_engine(bundle_dir, precision)
    sidecar = read_sidecar(engine)
    assert sidecar.precision == precision
    assert sidecar.onnx_file == ("model.int8.onnx" if precision == "int8" else "model.onnx")
    bundle = load_bundle(bundle_dir)
    candidate = TensorRTBackend(bundle, engine)
    reference = OnnxRuntimeBackend(bundle.model_path, bundle.spec)
    clips = [c.clip for c in open_source("synthetic", bundle.spec, 12, seed=4)]
    report = compare_backends(candidate, reference, clips, precision)
    candidate.close()
    reference.close()
    assert report.passed, report.summary()


def test_engine_for_a_changed_model_is_refused(bundle_dir):
    from edge.core.bundle import load_bundle
    from edge.runtime.backends.tensorrt.backend import TensorRTBackend
    from edge.runtime.backends.tensorrt.build import build_engine
    from edge.runtime.backends.tensorrt.engines import EngineMismatch, read_sidecar, write_sidecar

    engine = build_engine(bundle_dir, "fp16")
    sidecar = read_sidecar(engine)
    write_sidecar(engine, type(sidecar)(**{**sidecar.__dict__, "onnx_sha256": "0" * 64}))
    with pytest.raises(EngineMismatch, match="rebuild with 'asl-edge build"):
        TensorRTBackend(load_bundle(bundle_dir), engine)


def test_auto_selection_prefers_the_engine(bundle_dir):
    from edge.core.bundle import load_bundle
    from edge.runtime.backends.select import open_backend
    from edge.runtime.backends.tensorrt.build import build_engine

    build_engine(bundle_dir, "fp16")
    backend, selection = open_backend(load_bundle(bundle_dir), "auto")
    assert selection.backend == "tensorrt"
    backend.close()


def test_reload_swap_keeps_the_new_context_current(bundle_dir):
    """A reload opens the new engine (its CUDA context on top) before closing the old one; the
    new one must still run, and give what it gave before the old one was closed."""
    import numpy as np

    from edge.core.bundle import load_bundle
    from edge.runtime.backends.tensorrt.backend import TensorRTBackend
    from edge.runtime.backends.tensorrt.build import build_engine
    from edge.runtime.model import smoke_test

    engine = build_engine(bundle_dir, "fp16")
    bundle = load_bundle(bundle_dir)
    clip = np.random.default_rng(3).uniform(-1, 1, bundle.spec.input_shape).astype(np.float32)
    old = TensorRTBackend(bundle, engine)
    new = TensorRTBackend(bundle, engine)
    smoke_test(new)
    before = new.infer(clip).copy()
    old.close()
    np.testing.assert_allclose(new.infer(clip), before, rtol=1e-5, atol=1e-5)
    failed = TensorRTBackend(bundle, engine)
    failed.close()
    np.testing.assert_allclose(new.infer(clip), before, rtol=1e-5, atol=1e-5)
    new.close()
