"""The interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.core.bundle import ModelSpec


class Backend(Protocol):
    """Runs one clip at a time; owned by a single (inference) thread."""

    name: str
    spec: ModelSpec

    def infer(self, clip: np.ndarray) -> np.ndarray:
        """``(1, 3, T, H, W)`` float32 in [-1, 1] to logits ``(1, C, T')`` float32.

        The returned array may be reused by the next call: copy it to keep it.
        """
        ...

    def close(self) -> None:
        """Release the session and its buffers; the backend is unusable afterwards."""
        ...
