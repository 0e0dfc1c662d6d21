"""The runtime requirements of setup.py (its ``install_requires``) that apply on a Jetson with
JetPack 6 (CPython 3.10, Linux, aarch64), one per line without their markers: what
scripts/jetson-constraints.sh resolves and tests/test_jetson.py checks.

Usage: python scripts/runtime_requirements.py [setup.py]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # a bare python3: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement

JETSON = {
    "python_version": "3.10",
    "python_full_version": "3.10.12",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
}


def install_requires(setup_py: Path) -> list[str]:
    """The ``install_requires`` list of ``setup(...)``, read without running setup.py."""
    for node in ast.walk(ast.parse(setup_py.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [ast.literal_eval(item) for item in node.value.elts]  # type: ignore[attr-defined]
    raise ValueError(f"{setup_py} has no install_requires")


def for_jetson(requirements: list[str]) -> list[str]:
    """Those whose markers hold on the Jetson, written without the markers."""
    kept = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(JETSON):
            requirement.marker = None
            kept.append(str(requirement))
    return kept


if __name__ == "__main__":
    here = Path(__file__).resolve().parent.parent
    for line in for_jetson(install_requires(Path(sys.argv[1]) if len(sys.argv) > 1 else here / "setup.py")):
        print(line)
