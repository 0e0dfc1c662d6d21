"""The preallocated frame ring: selection by time, overwrite order, no allocation per frame."""

import numpy as np
import pytest

from edge.runtime.ring import FrameRing


def test_selects_frames_by_timestamp_oldest_first_across_the_wrap():
    ring = FrameRing(capacity=5, size=4)
    for index in range(8):
        ring.push(np.full((4, 4, 3), index, np.uint8), stamp_s=index / 10, arrived=100.0 + index)
    slots = ring.between(0.35, 0.65)
    assert [int(ring.crops[s][0, 0, 0]) for s in slots] == [4, 5, 6]
    assert list(ring.arrivals[slots]) == [104.0, 105.0, 106.0]
    everything = ring.between(-1.0, 10.0)
    assert [int(ring.crops[s][0, 0, 0]) for s in everything] == [3, 4, 5, 6, 7]  # 0-2 overwritten
    assert len(ring.between(5.0, 6.0)) == 0


def test_push_copies_into_the_preallocated_array():
    ring = FrameRing(capacity=2, size=2)
    storage = ring.crops
    crop = np.ones((2, 2, 3), np.uint8)
    ring.push(crop, 0.0, 0.0)
    crop[:] = 9
    assert ring.crops is storage
    assert int(ring.crops[0].max()) == 1
    with pytest.raises(ValueError):
        FrameRing(capacity=0, size=2)
