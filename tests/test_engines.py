"""Engines that know their device, backend selection and verification: everything but TensorRT."""

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asl_edge.cli import main
from calibration.verify import compare_backends
from edge.core.atomic import atomic_write_bytes
from edge.core.bundle import load_bundle
from edge.core.errors import BackendError
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.backends.select import open_backend
from edge.runtime.backends.tensorrt.backend import tensorrt_available
from edge.runtime.backends.tensorrt.engines import (
    DeviceInfo,
    EngineMismatch,
    Sidecar,
    check_engine,
    engine_path,
    read_sidecar,
    select_engine,
    sidecar_path,
    write_sidecar,
)
from tests.conftest import AUTO_CPU_BACKEND

SIDECARS = Path(__file__).parent / "fixtures" / "sidecars"
ORIN_JP60 = DeviceInfo("8.6.2", "Orin", "8.7")
ORIN_JP62 = DeviceInfo("10.3.0", "Orin", "8.7")
XAVIER = DeviceInfo("8.5.2", "Xavier", "7.2")


def _hand_written(name: str) -> Sidecar:
    """A sidecar as an engine built on another device would have it: hand-written in the format
    of asl-edge 0.1's first sidecars (with the ``l4t`` and ``bundle_onnx_sha256`` keys that this
    version no longer reads, so loading them also proves old sidecars still load)."""
    return Sidecar.from_dict(json.loads((SIDECARS / f"{name}.json").read_text()))


def _install(bundle_dir: Path, name: str) -> Path:
    """Put a hand-written engine (dummy bytes) and its sidecar into ``bundle_dir``."""
    sidecar = _hand_written(name)
    engine = engine_path(bundle_dir, sidecar.device, sidecar.precision)
    atomic_write_bytes(engine, b"serialized engine")
    write_sidecar(engine, sidecar)
    return engine


@pytest.mark.parametrize(
    ("sidecar_name", "device", "pattern"),
    [
        (
            "orin-nano-jetpack60-fp16",
            ORIN_JP62,
            r"TensorRT 8\.6\.2 on Orin \(sm 8\.7\); this device has TensorRT 10\.3\.0",
        ),
        (
            "orin-nano-jetpack60-fp16",
            XAVIER,
            r"on Orin \(sm 8\.7\); this device has TensorRT 8\.5\.2 on Xavier",
        ),
        ("rtx-4090-desktop-fp16", ORIN_JP62, r"NVIDIA GeForce RTX 4090 \(sm 8\.9\)"),
        ("xavier-nx-jetpack51-fp16", ORIN_JP60, r"Xavier \(sm 7\.2\)"),
    ],
)
def test_engines_from_other_devices_are_refused_in_one_line(tmp_path, sidecar_name, device, pattern):
    sidecar = _hand_written(sidecar_name)
    with pytest.raises(EngineMismatch, match=pattern) as info:
        check_engine(tmp_path / "x.engine", sidecar, device, tmp_path, "ONNX")
    message = str(info.value)
    assert "\n" not in message
    assert f"rebuild with 'asl-edge build {tmp_path} --precision {sidecar.precision}'" in message


def test_matching_engine_passes_and_a_changed_onnx_does_not(tmp_path):
    sidecar = _hand_written("orin-nano-jetpack60-fp16")
    check_engine(tmp_path / "e.engine", sidecar, ORIN_JP60, tmp_path, "ONNX")
    with pytest.raises(EngineMismatch, match=r"built from another model\.onnx"):
        check_engine(tmp_path / "e.engine", sidecar, ORIN_JP60, tmp_path, "CHANGED")


def test_select_prefers_int8_then_fp16_and_skips_foreign_or_damaged_engines(tmp_path):
    checksums = {"model.onnx": "ONNX", "model.int8.onnx": "INT8"}
    assert select_engine(tmp_path, ORIN_JP62, checksums) is None
    _install(tmp_path, "orin-nano-jetpack60-fp16")  # another TensorRT version
    _install(tmp_path, "rtx-4090-desktop-fp16")
    assert select_engine(tmp_path, ORIN_JP62, checksums) is None
    fp16 = _install(tmp_path, "orin-nano-jetpack60-fp16")
    assert select_engine(tmp_path, ORIN_JP60, checksums) == fp16
    int8 = _install(tmp_path, "orin-nano-jetpack62-int8")
    fp16_jp62 = engine_path(tmp_path, ORIN_JP62, "fp16")
    atomic_write_bytes(fp16_jp62, b"engine")
    write_sidecar(fp16_jp62, replace(_hand_written("orin-nano-jetpack60-fp16"), device=ORIN_JP62))
    assert select_engine(tmp_path, ORIN_JP62, checksums) == int8
    assert select_engine(tmp_path, ORIN_JP62, checksums, "fp16") == fp16_jp62
    assert select_engine(tmp_path, ORIN_JP62, {**checksums, "model.int8.onnx": "NEW"}) == fp16_jp62
    sidecar_path(fp16_jp62).write_text("{broken")
    assert select_engine(tmp_path, ORIN_JP62, checksums, "fp16") is None
    with pytest.raises(EngineMismatch, match="unreadable engine sidecar"):
        read_sidecar(fp16_jp62)
    sidecar_path(int8).unlink()
    with pytest.raises(EngineMismatch, match="no sidecar"):
        read_sidecar(int8)


def test_engine_names_carry_version_gpu_and_precision(tmp_path):
    device = DeviceInfo("10.3.0", "NVIDIA Jetson AGX Orin", "8.7")
    assert engine_path(tmp_path, device, "int8").name == "10.3.0-nvidia-jetson-agx-orin-int8.engine"
    with pytest.raises(BackendError, match="precision must be one of"):
        engine_path(tmp_path, device, "int4")


def test_sidecar_round_trip(tmp_path):
    sidecar = _hand_written("orin-nano-jetpack62-int8")
    engine = tmp_path / "engines" / "e.engine"
    write_sidecar(engine, sidecar)
    assert read_sidecar(engine) == sidecar
    assert json.loads(sidecar_path(engine).read_text())["format_version"] == 1


def test_atomic_write_never_leaves_a_half_file(tmp_path, monkeypatch):
    target = tmp_path / "engines" / "model.engine"
    atomic_write_bytes(target, b"old engine")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new engine that never lands")
    monkeypatch.undo()
    assert target.read_bytes() == b"old engine"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.engine"]
    atomic_write_bytes(target, b"new engine")
    assert target.read_bytes() == b"new engine"


def test_tensorrt_absent_or_stubs_only_is_not_available(tmp_path, monkeypatch):
    stubs_only = tmp_path / "site"
    (stubs_only / "tensorrt").mkdir(parents=True)
    (stubs_only / "tensorrt" / "__init__.pyi").write_text("__version__: str\n")
    monkeypatch.syspath_prepend(str(stubs_only))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    try:
        assert tensorrt_available() is False
    finally:
        sys.modules.pop("tensorrt", None)


@pytest.mark.skipif(tensorrt_available(), reason="checks the behaviour without TensorRT")
def test_backend_selection_without_tensorrt(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    backend, selection = open_backend(bundle, "auto")
    assert (backend.name, selection.backend) == (AUTO_CPU_BACKEND, AUTO_CPU_BACKEND)
    assert "TensorRT is not installed" in selection.reason
    backend.close()
    backend, selection = open_backend(bundle, "onnxruntime")
    assert selection.reason == "requested in the config"
    backend.close()
    with pytest.raises(BackendError, match="backend 'tensorrt': TensorRT is not installed"):
        open_backend(bundle, "tensorrt")
    with pytest.raises(BackendError, match="not one of auto, tensorrt, openvino, onnxruntime"):
        open_backend(bundle, "cuda")


@pytest.mark.skipif(tensorrt_available(), reason="checks the behaviour without TensorRT")
def test_build_and_verify_without_tensorrt_are_clear_errors(tiny_bundle, capsys):
    assert main(["build", str(tiny_bundle), "--precision", "fp16"]) == 2
    assert main(["verify", str(tiny_bundle)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["asl-edge: error: TensorRT is not installed (JetPack provides it on the Jetson)"] * 2


@pytest.mark.slow
def test_verify_comparison_with_two_real_backends(tiny_bundle, tmp_path, tiny_checkpoint, tiny_labels):
    from convert.i3d import InceptionI3d
    from convert.pipeline import convert_checkpoint
    from convert.random_model import randomize
    from convert.sources import random_clips
    from tests.conftest import save_checkpoint

    bundle = load_bundle(tiny_bundle)
    reference = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=1)
    same = OnnxRuntimeBackend(bundle.model_path, bundle.spec, threads=2)
    clips = [c.clip for c in random_clips(bundle.spec, 4, seed=3)]
    identical = compare_backends(same, reference, clips, "fp16")
    assert identical.passed
    assert identical.clips == 4
    assert identical.max_rel_diff < 1e-5
    other_checkpoint = save_checkpoint(randomize(InceptionI3d(10, width=0.125), seed=123), tmp_path / "o.pt")
    convert_checkpoint(other_checkpoint, tiny_labels, 16, tmp_path / "other")
    other = load_bundle(tmp_path / "other")
    different = OnnxRuntimeBackend(other.model_path, other.spec, threads=1)
    report = compare_backends(different, reference, clips, "int8")
    assert not report.passed
    assert report.max_rel_diff > 0.05
    assert "FAIL" in report.summary()
    for backend in (reference, same, different):
        backend.close()


def test_random_clips_are_smooth_and_deterministic(tiny_bundle):
    from convert.sources import random_clips

    spec = load_bundle(tiny_bundle).spec
    first = [c.clip for c in random_clips(spec, 2, seed=1)]
    again = [c.clip for c in random_clips(spec, 2, seed=1)]
    assert first[0].shape == spec.input_shape
    assert np.array_equal(first[1], again[1])
    assert np.abs(np.diff(first[0], axis=-1)).mean() < 0.05
    assert first[0].min() >= -1.0
    assert first[0].max() <= 1.0


def test_config_accepts_tensorrt_settings(tmp_path):
    from edge.core.config import read_config

    path = tmp_path / "c.toml"
    path.write_text('[model]\nbackend = "tensorrt"\nprecision = "int8"\nbuild_if_missing = true\n')
    config, problems = read_config(path)
    assert problems == []
    assert (config.model.backend, config.model.precision, config.model.build_if_missing) == (
        "tensorrt",
        "int8",
        True,
    )
    path.write_text('[model]\nbuild_if_missing = "yes"\nprecision = "int4"\n')
    _, problems = read_config(path)
    assert len(problems) == 2
