"""The OpenVINO backend: parity with ONNX Runtime FP32, the demo model's words, explicit
precisions, the accuracy gate behind ``auto``, the compiled-model cache, and backend selection."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convert.sources import open_source, random_clips
from edge.core.bundle import DEMO_BUNDLE, OPENVINO_INT8_FILE, load_bundle, sha256_of, update_manifest
from edge.core.errors import BackendError, BundleError
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.backends.openvino import OpenVinoBackend, cpu_capabilities, import_openvino
from edge.runtime.backends.select import open_backend

ROOT = Path(__file__).resolve().parent.parent

CAPABILITIES = cpu_capabilities(import_openvino().Core())


@pytest.fixture(scope="module")
def demo():
    return load_bundle(DEMO_BUNDLE)


@pytest.fixture(scope="module")
def demo_clips(demo):
    """Fresh synthetic signs (a seed neither calibration nor validation used), one per word in turn."""
    return list(open_source("synthetic", demo.spec, 4, seed=4242))


@pytest.fixture(scope="module")
def onnxruntime_words(demo, demo_clips):
    backend = OnnxRuntimeBackend(demo.model_path, demo.spec, threads=1)
    words = [int(backend.infer(c.clip).mean(-1).argmax()) for c in demo_clips]
    backend.close()
    return words


@pytest.fixture
def demo_copy(tmp_path):
    return Path(shutil.copytree(DEMO_BUNDLE, tmp_path / "bundle"))


def _edit_manifest(bundle_dir: Path, edit) -> None:
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_fp32_matches_onnxruntime(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    reference = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=1)
    backend = OpenVinoBackend(bundle, "fp32", threads=1)
    assert (backend.name, backend.precision) == ("openvino", "fp32")
    for item in random_clips(bundle.spec, 3, seed=11):
        expected = reference.infer(item.clip).copy()
        logits = backend.infer(item.clip)
        assert logits.shape == bundle.spec.output_shape
        assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()
        assert logits.mean(-1).argmax() == expected.mean(-1).argmax()
    backend.close()
    reference.close()


@pytest.mark.parametrize("precision", ["fp32", "int8", "auto"])
def test_demo_words_are_onnxruntime_words(demo, demo_clips, onnxruntime_words, precision):
    backend = OpenVinoBackend(demo, precision, threads=1)
    words = [int(backend.infer(c.clip).mean(-1).argmax()) for c in demo_clips]
    assert words == onnxruntime_words == [c.label for c in demo_clips]
    assert backend.precision == ("int8" if precision == "auto" else precision)
    backend.close()


def test_bf16_runs_only_where_the_cpu_has_it(demo, demo_clips, onnxruntime_words):
    if "BF16" not in CAPABILITIES:
        with pytest.raises(BackendError, match="this CPU has no native BF16"):
            OpenVinoBackend(demo, "bf16")
        with pytest.raises(BackendError, match="no native BF16"):
            open_backend(demo, "auto", precision="bf16")
        return
    backend = OpenVinoBackend(demo, "bf16", threads=1)
    assert [int(backend.infer(c.clip).mean(-1).argmax()) for c in demo_clips] == onnxruntime_words
    backend.close()


def test_backend_refuses_wrong_clips_and_reuses_its_output(tiny_bundle):
    backend = OpenVinoBackend(load_bundle(tiny_bundle), "fp32", threads=1)
    clip = np.zeros((1, 3, 16, 224, 224), np.float32)
    first = backend.infer(clip)
    assert first.shape == (1, 10, 1)
    again = backend.infer(clip + 0.5)
    assert np.shares_memory(first, again)
    with pytest.raises(BackendError, match="float32"):
        backend.infer(np.zeros((1, 3, 8, 224, 224), np.float32))
    with pytest.raises(BackendError, match="float32"):
        backend.infer(clip.astype(np.float64))
    backend.close()
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(clip)


def test_auto_follows_the_accuracy_gate(demo_copy):
    assert OpenVinoBackend(load_bundle(demo_copy), "auto").precision == "int8"
    _edit_manifest(demo_copy, lambda m: m["openvino"]["int8"].update(passed=False))
    backend = OpenVinoBackend(load_bundle(demo_copy), "auto")
    assert backend.precision == "fp32"
    assert "int8: accuracy gate failed" in backend.reason
    _edit_manifest(demo_copy, lambda m: m.pop("openvino"))
    assert "int8: accuracy gate not measured" in OpenVinoBackend(load_bundle(demo_copy), "auto").reason
    # An explicit int8 is the user's call, gate or not; a missing or altered model is an error.
    assert OpenVinoBackend(load_bundle(demo_copy), "int8").precision == "int8"
    (demo_copy / "model.openvino.int8.bin").write_bytes(b"\0" * 16)
    with pytest.raises(BundleError, match="does not match the manifest"):
        OpenVinoBackend(load_bundle(demo_copy), "int8")
    (demo_copy / OPENVINO_INT8_FILE).unlink()
    with pytest.raises(BackendError, match="run 'asl-edge calibrate"):
        OpenVinoBackend(load_bundle(demo_copy), "int8")


def test_compiled_model_cache_spares_the_next_start(demo, tmp_path):
    cache = tmp_path / "state" / "openvino-cache"
    first, selection = open_backend(demo, "openvino", precision="int8", cache_dir=cache)
    assert not first.from_cache
    assert "from cache" not in selection.reason
    assert any(cache.iterdir())
    first.close()
    second, selection = open_backend(demo, "openvino", precision="int8", cache_dir=cache)
    assert second.from_cache
    assert selection.reason.endswith("compiled model from cache")
    second.close()


def test_backend_selection_with_openvino(demo):
    backend, selection = open_backend(demo, "auto")
    assert (backend.name, selection.backend) == ("openvino", "openvino")
    assert selection.reason.startswith("TensorRT is not installed")
    assert "int8: fastest precision" in selection.reason
    backend.close()
    backend, selection = open_backend(demo, "auto", precision="fp16")
    assert backend.name == "onnxruntime"
    assert "fp16 is not an OpenVINO precision" in selection.reason
    backend.close()
    with pytest.raises(BackendError, match="backend 'openvino': fp16 is not an OpenVINO precision"):
        open_backend(demo, "openvino", precision="fp16")
    with pytest.raises(BackendError, match="backend 'tensorrt': bf16 is not a TensorRT precision"):
        open_backend(demo, "tensorrt", precision="bf16")


def test_auto_works_without_openvino():
    """With ``openvino`` not importable (as on a kiosk without the extra), ``import edge`` and the
    ``auto`` backend still work: ONNX Runtime, saying why."""
    code = (
        "import sys; sys.modules['openvino'] = None; sys.modules['nncf'] = None\n"
        "import asl_edge.cli, edge.runtime.backends.select as s, edge.core.bundle as b\n"
        "backend, selection = s.open_backend(b.load_bundle(b.DEMO_BUNDLE), 'auto')\n"
        "print(backend.name, selection.reason)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.startswith("onnxruntime ")
    assert "OpenVINO is not installed" in result.stdout


@pytest.mark.parametrize(
    ("name", "precision", "reason"),
    [
        ("model.onnx", "fp32", r"cannot read the model \(onnx\): Model can't be parsed"),
        ("model.openvino.int8.xml", "int8", r"cannot read the model \(ir\): No document element found"),
    ],
)
def test_corrupt_model_is_a_backend_error_in_one_line_read_by_its_own_frontend_only(
    demo_copy, name, precision, reason
):
    (demo_copy / name).write_bytes(b"not a model")
    update_manifest(demo_copy, {name: sha256_of(demo_copy / name)}, {})
    with pytest.raises(BackendError, match=f"{name}: OpenVINO {reason}") as error:
        OpenVinoBackend(load_bundle(demo_copy, verify=False), precision)
    assert "\n" not in str(error.value)
    # In a process of its own: no other frontend tried the file (TensorFlow's says so on stderr).
    code = (
        "import sys, edge.core.bundle as b, edge.runtime.backends.openvino as o\n"
        "try:\n    o.OpenVinoBackend(b.load_bundle(sys.argv[1], verify=False), sys.argv[2])\n"
        "except o.BackendError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(demo_copy), precision],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == str(error.value), result.stderr[-2000:]
    assert "tensorflow" not in result.stderr.lower(), result.stderr[-2000:]
