"""Motion segmentation on synthetic sentences: one segment per sign, at the sign's time."""

import numpy as np
import pytest

from edge.core.config import SegmenterConfig
from edge.demo.signer import GLOSSES, render_sentence
from edge.runtime.segment import MotionMeter, MotionSegmenter, Segment, StableWords

FPS = 30.0


def _segments(frames: np.ndarray, settings: SegmenterConfig | None = None) -> list[Segment]:
    meter, segmenter, found = MotionMeter(), MotionSegmenter(settings), []
    for index, frame in enumerate(frames):
        segment = segmenter.update(index / FPS, meter(frame))
        if segment:
            found.append(segment)
    last = segmenter.flush()
    return [*found, last] if last else found


@pytest.mark.parametrize(("seed", "size"), [(1, (320, 240)), (2, (320, 180)), (3, (180, 320))])
def test_each_sign_of_a_sentence_is_one_segment(seed, size):
    rng = np.random.default_rng([4242, seed])
    words = [GLOSSES[i] for i in rng.permutation(len(GLOSSES))[:5]]
    frames, spans = render_sentence(words, rng, size, FPS)
    segments = _segments(frames)
    assert len(segments) == len(spans)
    for (start, end), segment in zip(spans, segments, strict=True):
        assert abs(segment.start_s - start) <= 0.25
        assert abs(segment.end_s - end) <= 0.3
        assert not segment.cut


def test_a_still_scene_and_a_twitch_give_nothing():
    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(0, 255, (1, 120, 160, 3), dtype=np.uint8), 60, axis=0)
    assert _segments(still) == []
    twitch = still.copy()
    twitch[30:33, 40:80, 40:80] = 255
    assert _segments(twitch) == []


def test_endless_motion_is_cut_at_the_maximum_and_flush_ends_a_sign():
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 255, (200, 60, 80, 3), dtype=np.uint8)
    segments = _segments(noisy, SegmenterConfig(max_sign_s=2.0))
    assert [s.cut for s in segments] == [True, True, True, False]
    assert segments[0].duration_s == pytest.approx(2.0 + 0.1 + 1 / FPS, abs=0.05)
    segmenter = MotionSegmenter()
    for index in range(20):
        segmenter.update(index / FPS, 0.05)
    assert segmenter.in_sign
    flushed = segmenter.flush()
    assert flushed is not None
    assert flushed.end_s == pytest.approx(19 / FPS + 0.1)
    assert segmenter.flush() is None


def test_sliding_windows_skip_stillness_and_follow_the_stride():
    from edge.runtime.segment import SlidingWindows

    windows = SlidingWindows(SegmenterConfig(mode="sliding", window_s=1.0, stride_s=0.5))
    offered = []
    for index in range(150):  # 5 s: still, moving from 2 s to 3.5 s, still again
        t = index / FPS
        segment = windows.update(t, 0.05 if 2.0 <= t < 3.5 else 0.0)
        if segment:
            offered.append(round(segment.end_s, 2))
    assert offered  # only windows that saw motion
    assert offered == [
        2.0,
        2.5,
        3.0,
        3.5,
        4.0,
    ]  # windows ending from the first to 0.5 s after the last motion
    assert windows.flush() is None


def test_sliding_mode_publishes_a_word_once_stable_windows_agree():
    vote = StableWords(SegmenterConfig(mode="sliding", stride_s=0.5, stable_windows=2))
    published = [
        word
        for end_s, word in [
            (1.0, "book"),
            (1.5, "book"),
            (2.0, "book"),
            (2.5, "go"),
            (3.0, "go"),
            (3.5, "go"),
        ]
        if vote.publish(word, end_s)
    ]
    assert published == ["book", "go"]
    # Stillness (a gap of windows) ends the agreement: the same word can be published again.
    assert not vote.publish("go", 9.0)
    assert vote.publish("go", 9.5)
    assert not vote.publish("unknown", 10.0) and not vote.publish("unknown", 10.5)
    assert StableWords(SegmenterConfig()).publish("book", 1.0)  # motion mode: every sign
