"""Shared fixtures: small random I3D checkpoints, bundles converted from them, test videos, and a
local HTTP server. Everything is made at test time; nothing is downloaded. PyTorch is imported only
by the fixtures that need it, so the runtime tests also run where it is not installed (the Jetson
lane); the suite's tiers (unit, service, slow) are assigned in tests/tiers.py."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import platform
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest

from tests.tiers import (
    PREBUILT_BUNDLE_ENV,
    _unit_tests_start_no_service,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_ignore_collect,
    pytest_report_header,
    pytest_runtest_setup,
)

if TYPE_CHECKING:
    from convert.i3d import InceptionI3d

__all__ = [
    "_unit_tests_start_no_service",
    "pytest_collection_finish",
    "pytest_collection_modifyitems",
    "pytest_ignore_collect",
    "pytest_report_header",
    "pytest_runtest_setup",
]

# What [model] backend = "auto" runs on this machine without TensorRT: OpenVINO on an x86 CPU where it
# is installed (CI installs it), else ONNX Runtime.
AUTO_CPU_BACKEND = (
    "openvino"
    if importlib.util.find_spec("openvino") and platform.machine().lower() in ("x86_64", "amd64")
    else "onnxruntime"
)
TINY_WIDTH = 0.125
TINY_CLASSES = 10
TINY_FRAMES = 16


def save_checkpoint(model: InceptionI3d, path: Path, prefix: str = "") -> Path:
    import torch

    torch.save({prefix + key: value for key, value in model.state_dict().items()}, path)
    return path


def write_labels(path: Path, count: int, indexed: bool = True) -> Path:
    lines = [f"{i}\tgloss{i}" if indexed else f"gloss{i}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """Write BGR frames with OpenCV's mp4v encoder (what pip's OpenCV can write)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def moving_blob_frames(count: int, size=(320, 240), colour=(0, 0, 255), seed: int = 0) -> list[np.ndarray]:
    """A coloured disc crossing a textured background: content a model's output depends on."""
    width, height = size
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 8)
    frames = []
    for i in range(count):
        frame = background.copy()
        x = int(width * (0.2 + 0.6 * i / max(1, count - 1)))
        cv2.circle(frame, (x, height // 2), height // 6, colour, -1)
        frames.append(frame)
    return frames


@pytest.fixture(scope="session")
def tiny_model() -> InceptionI3d:
    from convert.i3d import InceptionI3d
    from convert.random_model import randomize

    return randomize(InceptionI3d(TINY_CLASSES, width=TINY_WIDTH), seed=7)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model: InceptionI3d, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny.pt", prefix="module.")


@pytest.fixture(scope="session")
def tiny_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_labels(tmp_path_factory.mktemp("labels") / "wlasl_class_list.txt", 2 * TINY_CLASSES)


@pytest.fixture(scope="session")
def tiny_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint converted; or a copy of the one ``$ASL_EDGE_TEST_TINY_BUNDLE`` names,
    made the same way beforehand (``python -m tests.models DIR``) where PyTorch is not installed."""
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    prebuilt = os.environ.get(PREBUILT_BUNDLE_ENV)
    if prebuilt:
        shutil.copytree(prebuilt, out)
        return out
    from convert.pipeline import convert_checkpoint

    checkpoint = request.getfixturevalue("tiny_checkpoint")
    convert_checkpoint(checkpoint, request.getfixturevalue("tiny_labels"), TINY_FRAMES, out)
    return out


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on a free loopback port: (directory, base URL)."""
    root = tmp_path_factory.mktemp("www")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
