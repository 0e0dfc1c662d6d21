"""Static checks run as part of the suite: ruff on everything, mypy on every package."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_is_clean():
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    result = _run(sys.executable, "-m", "mypy", "asl_edge", "edge", "convert", "calibration")
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_imports_no_build_time_library():
    """Every module of the core, the runtime and the CLI imports without PyTorch, ONNX or NNCF
    being loaded: the kiosk never installs them; nor OpenVINO, an optional extra loaded only when
    its backend opens. (TensorRT's calibrator needs TensorRT itself.)"""
    code = (
        "import importlib, pkgutil, sys, edge, asl_edge.cli\n"
        "for info in pkgutil.walk_packages(edge.__path__, 'edge.'):\n"
        "    if not info.name.endswith('tensorrt.calibrator'):\n"
        "        importlib.import_module(info.name)\n"
        "loaded = sorted(m for m in ('torch', 'onnx', 'nncf', 'openvino') if m in sys.modules)\n"
        "sys.exit(', '.join(loaded) or None)"
    )
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stdout + result.stderr
