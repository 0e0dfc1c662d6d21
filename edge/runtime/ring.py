"""A preallocated ring of preprocessed frames, so a sign's frames never have to be decoded again.

Each frame is cropped once on arrival and copied into the next slot of one uint8 array (224x224x3
per frame, a quarter of float32), with its stream timestamp, its epoch and its arrival time; a
sign's frames are then selected by time within one epoch (frames of a camera's earlier connection
never join a sign of the next) and normalized only when the sign is classified.
"""

from __future__ import annotations

import numpy as np


class FrameRing:
    """``capacity`` crops of ``size`` x ``size``; the oldest is overwritten when full."""

    def __init__(self, capacity: int, size: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.crops = np.empty((capacity, size, size, 3), dtype=np.uint8)
        self.stamps = np.full(capacity, -np.inf)
        self.arrivals = np.zeros(capacity)
        self.epochs = np.full(capacity, -1, dtype=np.int64)
        self._next = 0
        self.count = 0

    def push(self, crop: np.ndarray, stamp_s: float, arrived: float, epoch: int = 0) -> None:
        slot = self._next
        self.crops[slot] = crop
        self.stamps[slot] = stamp_s
        self.arrivals[slot] = arrived
        self.epochs[slot] = epoch
        self._next = (slot + 1) % len(self.crops)
        self.count = min(self.count + 1, len(self.crops))

    def between(self, start_s: float, end_s: float, epoch: int = 0) -> np.ndarray:
        """Slots of the frames of ``epoch`` with ``start_s <= timestamp <= end_s``, oldest first."""
        capacity = len(self.crops)
        order = (np.arange(self.count) + self._next - self.count) % capacity
        stamps = self.stamps[order]
        return order[(stamps >= start_s) & (stamps <= end_s) & (self.epochs[order] == epoch)]
