"""``python -m tests.models DIR``: the tiny bundle of the ``tiny_bundle`` fixture, made ahead of a
test run where PyTorch is not installed (the Jetson lane points ``$ASL_EDGE_TEST_TINY_BUNDLE`` at it)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.conftest import TINY_CLASSES, TINY_FRAMES, TINY_WIDTH, save_checkpoint, write_labels


def write_tiny_bundle(out: Path) -> Path:
    """The same seeded model, checkpoint prefix and labels as the fixtures, converted into ``out``."""
    from convert.i3d import InceptionI3d
    from convert.pipeline import convert_checkpoint
    from convert.random_model import randomize

    with tempfile.TemporaryDirectory(prefix="asl-edge-tiny-") as folder:
        model = randomize(InceptionI3d(TINY_CLASSES, width=TINY_WIDTH), seed=7)
        checkpoint = save_checkpoint(model, Path(folder) / "tiny.pt", prefix="module.")
        labels = write_labels(Path(folder) / "wlasl_class_list.txt", 2 * TINY_CLASSES)
        convert_checkpoint(checkpoint, labels, TINY_FRAMES, out)
    return out


if __name__ == "__main__":
    print(write_tiny_bundle(Path(sys.argv[1])))
