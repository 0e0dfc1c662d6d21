"""The Jetson's install is one that was resolved: requirements/jetson.txt pins every runtime
requirement for JetPack 6 (CPython 3.10, aarch64) with NumPy 1.x, the installers use it, and it
still resolves for that platform on the package index."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "requirements" / "jetson.txt"
PLATFORM = [
    "--only-binary=:all:",
    "--python-version",
    "3.10",
    "--implementation",
    "cp",
    "--abi",
    "cp310",
    *("--platform", "manylinux_2_35_aarch64"),
    *("--platform", "manylinux_2_28_aarch64"),
    *("--platform", "manylinux_2_17_aarch64"),
    *("--platform", "manylinux2014_aarch64"),
]


def _runtime_requirements() -> list[str]:
    script = ROOT / "scripts" / "runtime_requirements.py"
    spec = importlib.util.spec_from_file_location("runtime_requirements", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.for_jetson(module.install_requires(ROOT / "setup.py"))


def _pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_runtime_requirement_is_pinned_within_its_range_and_numpy_is_1x():
    pins = _pins()
    requirements = [Requirement(text) for text in _runtime_requirements()]
    assert "tomli" in {r.name for r in requirements}, "Python 3.10 needs tomli: markers are the Jetson's"
    for requirement in requirements:
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not pinned: rerun scripts/jetson-constraints.sh"
        assert requirement.specifier.contains(pin, prereleases=True), (requirement, pin)
    assert pins["numpy"].major == 1
    assert "pycuda" in pins


def test_the_installers_install_with_the_constraints():
    install = (ROOT / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert "$here/requirements/jetson.txt" in install
    assert "numpy<2" not in install.replace("# ", ""), "the constraints carry numpy<2 now"
    dockerfile = (ROOT / "Dockerfile.jetson").read_text(encoding="utf-8")
    assert "ASL_EDGE_EXTRAS=jetson /src/scripts/install.sh" in dockerfile


@pytest.mark.slow  # asks the package index
def test_the_constraints_still_resolve_for_a_jetson(tmp_path):
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", *PLATFORM]
    where = ["--target", str(tmp_path / "target"), "--report", str(report), "-c", str(CONSTRAINTS)]
    result = subprocess.run(
        [*pip, *where, *_runtime_requirements()],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {
        canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]
    }
    pins = _pins()
    assert {name: resolved[name] for name in resolved} == {name: pins[name] for name in resolved}
    assert resolved["numpy"] == pins["numpy"] and resolved["onnxruntime"] == pins["onnxruntime"]
