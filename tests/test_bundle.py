"""Bundles are refused when damaged, inconsistent or from another format version."""

import json
import shutil

import numpy as np
import pytest

from edge.core.bundle import load_bundle
from edge.core.errors import BackendError, BundleError
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "b")


def _edit_manifest(path, change):
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_loads_and_describes_the_model(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.spec.frames == 16
    assert bundle.spec.num_classes == 10
    assert bundle.spec.input_shape == (1, 3, 16, 224, 224)
    assert bundle.spec.model_id.startswith("tiny-")


def test_swapped_model_file_is_refused(bundle_copy):
    with open(bundle_copy / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=r"does not match the manifest.*asl-edge convert"):
        load_bundle(bundle_copy)
    assert load_bundle(bundle_copy, verify=False).spec.num_classes == 10


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
        (lambda m: m["input"].update(color_order="RGB"), "not supported"),
        (lambda m: m["input"].update(shape=[1, 3, 16, 224]), "input.shape"),
        (lambda m: m.pop("model_id"), "lacks"),
        (lambda m: m.update(sampling="random"), "sampling 'random' is not one of windows, resample"),
        (lambda m: m["output"].update(shape=[1, 11, 1]), "10 labels for a model with 11 classes"),
    ],
)
def test_inconsistent_manifests(bundle_copy, change, pattern):
    _edit_manifest(bundle_copy, change)
    with pytest.raises(BundleError, match=pattern):
        load_bundle(bundle_copy)


def test_missing_pieces(bundle_copy, tmp_path):
    (bundle_copy / "labels.txt").unlink()
    with pytest.raises(BundleError, match="cannot read labels"):
        load_bundle(bundle_copy)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path / "empty")
    (tmp_path / "empty/manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable manifest"):
        load_bundle(tmp_path / "empty")


def test_backend_checks_shapes_against_the_manifest(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m["input"].update(shape=[1, 3, 24, 224, 224]))
    bundle = load_bundle(bundle_copy)
    with pytest.raises(BackendError, match="does not match the manifest"):
        OnnxRuntimeBackend(bundle.model_path, bundle.spec)


def test_backend_refuses_wrong_clips_and_reuses_its_output(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=1)
    clip = np.zeros((1, 3, 16, 224, 224), np.float32)
    first = backend.infer(clip)
    assert first.shape == (1, 10, 1)
    assert backend.infer(clip + 0.5) is first
    with pytest.raises(BackendError, match="float32"):
        backend.infer(np.zeros((1, 3, 8, 224, 224), np.float32))
    backend.close()
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(clip)


def test_corrupt_onnx_is_a_backend_error(bundle_copy):
    (bundle_copy / "model.onnx").write_bytes(b"not a model")
    bundle = load_bundle(bundle_copy, verify=False)
    with pytest.raises(BackendError, match="cannot load the model"):
        OnnxRuntimeBackend(bundle.model_path, bundle.spec)
