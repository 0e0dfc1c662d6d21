"""Static checks run as part of the suite: ruff on everything, mypy on the runtime and converter."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_is_clean():
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = _run(sys.executable, "-m", "mypy", "edge", "convert", "calibration")
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_does_not_import_torch():
    code = (
        "import sys, edge.cli, edge.recognize, edge.backends.select, edge.backends.onnxruntime, "
        "edge.config, edge.bundle; sys.exit('torch' in sys.modules)"
    )
    assert _run(sys.executable, "-c", code).returncode == 0
