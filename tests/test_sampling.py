"""The one rule that turns a sign's frames into model inputs (daemon, recognize, calibration)."""

import numpy as np
import pytest

from edge.core.sampling import EvenSampler, model_inputs, windows


def _indices(crop_lists):
    return [[int(c) for c in crops] for crops in crop_lists]


def test_even_sampler_covers_streams_of_any_length():
    for length in (5, 16, 63, 64, 200, 1000):
        sampler = EvenSampler(16)
        for index in range(length):
            sampler.add(np.array(index))
        picked = [int(a) for a in sampler.clip_frames()]
        assert len(picked) == 16
        assert picked[0] == 0
        assert picked == sorted(picked)
        # The last pick is within one stride of the end; the kept buffer never exceeds 4T.
        assert length - 1 - picked[-1] < max(1, length // 16)
        assert len(sampler._kept) < 64


def test_windows_see_every_frame_and_end_on_the_last():
    frames = [np.array(i) for i in range(10)]
    assert _indices(windows(frames, 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert _indices(windows(frames[:8], 4)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert _indices(windows(frames[:3], 4)) == [[0, 1, 2, 2]]
    assert list(windows([], 4)) == []


def test_model_inputs_follow_the_sampling_mode():
    frames = [np.array(i) for i in range(10)]
    assert _indices(model_inputs(frames, 4, "windows")) == _indices(windows(frames, 4))
    (resampled,) = _indices(model_inputs(iter(frames), 4, "resample"))
    assert resampled == [0, 3, 6, 9]
    assert list(model_inputs([], 4, "resample")) == []
    with pytest.raises(ValueError, match="sampling must be one of"):
        list(model_inputs(frames, 4, "middle"))
