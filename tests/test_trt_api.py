"""Static API check: the TensorRT code type-checks against TensorRT 10's stubs.

No TensorRT runs here, so a misspelt or removed API name (``max_workspace_size``,
``execute_async_v2``, binding-index calls) would otherwise only fail on the Jetson. The stubs
(installed by scripts/bootstrap.sh into ``.venv/trt-stubs``) have two syntax slips that are
patched in a temporary copy; errors reported inside the stubs themselves are ignored.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # mypy, twice
ROOT = Path(__file__).resolve().parent.parent
STUBS = Path(sys.prefix) / "trt-stubs"
TENSORRT = "edge/runtime/backends/tensorrt/"
TENSORRT_MODULES = tuple(
    TENSORRT + name for name in ("backend.py", "build.py", "calibrator.py", "engines.py", "network.py")
)


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (STUBS / "tensorrt_bindings" / "tensorrt.pyi").is_file():
        pytest.fail(f"TensorRT stubs missing at {STUBS}: run scripts/bootstrap.sh (make test does)")
    target = tmp_path_factory.mktemp("trt-stubs")
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(STUBS / package, target / package)
    bindings = target / "tensorrt_bindings" / "tensorrt.pyi"
    text = re.sub(r"\bin: ", "in_: ", bindings.read_text(encoding="utf-8"))
    text = text.replace("channel_axis: int) -> IScaleLayer", "channel_axis: int = 0) -> IScaleLayer")
    bindings.write_text(text, encoding="utf-8")
    return target


def _mypy(stubs: Path, *files: str) -> list[str]:
    """mypy's error lines for ``files``, without those inside the stubs."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--ignore-missing-imports",
            "--follow-imports=silent",
            "--python-version",
            "3.10",
            *files,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"MYPYPATH": str(stubs), "PATH": str(Path(sys.executable).parent)},
    )
    return [line for line in result.stdout.splitlines() if ": error:" in line and str(stubs) not in line]


def test_tensorrt_modules_use_only_existing_api(stubs):
    assert _mypy(stubs, *TENSORRT_MODULES) == []


def test_removed_api_names_fail_the_check(stubs, tmp_path):
    snippet = tmp_path / "legacy_trt.py"
    snippet.write_text(
        "import tensorrt as trt\n\n\n"
        "def build(builder: trt.Builder, context: trt.IExecutionContext, engine: trt.ICudaEngine) -> None:\n"
        "    config = builder.create_builder_config()\n"
        "    config.max_workspace_size = 1\n"
        "    context.execute_async_v2([], 0)\n"
        "    engine.get_binding_index('clip')\n"
        "    builder.build_engine(None, config)\n",
        encoding="utf-8",
    )
    errors = "\n".join(_mypy(stubs, str(snippet)))
    for name in ("max_workspace_size", "execute_async_v2", "get_binding_index", "build_engine"):
        assert f'has no attribute "{name}"' in errors
