"""Speculative classification: the word comes as the hands come to rest, and it is exactly the word
the plain path gives. Real pipeline and the demo bundle on ONNX Runtime; frames fed in memory."""

from __future__ import annotations

import numpy as np
import pytest

from edge.core.bundle import DEMO_BUNDLE, load_bundle
from edge.core.config import ModelConfig, SegmenterConfig
from edge.demo.signer import GLOSSES, render_sentence
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.capture import Frame
from edge.runtime.pipeline import SignPipeline
from edge.runtime.segment import MotionSegmenter, Segment

FPS = 30.0


class CountingBackend:
    """The real backend, with the frame index at which each inference ran."""

    def __init__(self, backend: OnnxRuntimeBackend) -> None:
        self.backend = backend
        self.spec = backend.spec
        self.frame = 0
        self.inferences: list[int] = []

    def infer(self, clip: np.ndarray) -> np.ndarray:
        self.inferences.append(self.frame)
        return self.backend.infer(clip)

    def close(self) -> None:
        self.backend.close()


@pytest.fixture(scope="module")
def backend() -> CountingBackend:
    bundle = load_bundle(DEMO_BUNDLE)
    return CountingBackend(OnnxRuntimeBackend(bundle.model_path, bundle.spec))


def _recognize(frames: np.ndarray, backend: CountingBackend, speculate: bool):
    """Every sign the pipeline publishes, with the frame index at which it came out."""
    settings = SegmenterConfig(speculate=speculate)
    pipeline = SignPipeline(settings, ModelConfig(), backend.spec, int(FPS))
    backend.inferences.clear()
    signs = []
    for index, image in enumerate(frames):
        backend.frame = index
        sign = pipeline.feed(Frame(image, index / FPS, index), backend)  # type: ignore[arg-type]
        if sign is not None:
            signs.append((index, sign))
    backend.frame = len(frames)  # the end of the stream: the sign in progress is read now
    last = pipeline.finish(backend)  # type: ignore[arg-type]
    if last is not None:
        signs.append((len(frames), last))
    return signs, list(backend.inferences), pipeline


@pytest.mark.parametrize(("seed", "size"), [(5, (640, 480)), (6, (480, 360))])
def test_speculation_gives_the_plain_word_and_confidence_from_an_inference_made_before_the_rest_ends(
    backend, seed, size
):
    rng = np.random.default_rng([2026, seed])
    words = [GLOSSES[i] for i in rng.permutation(len(GLOSSES))[:4]]
    frames, _ = render_sentence(words, rng, size, FPS)
    plain, plain_inferences, _ = _recognize(frames, backend, speculate=False)
    fast, fast_inferences, pipeline = _recognize(frames, backend, speculate=True)

    def published(signs):
        return [(i, s.word, s.confidence, s.top_k, s.start_s, s.end_s) for i, s in signs]

    assert [s.word for _, s in plain] == words
    assert published(fast) == published(plain)  # the same words and confidences, bit for bit
    for frame, _ in plain:  # without speculation, each sign is read as its rest is confirmed ...
        assert frame in plain_inferences
    rest_frames = round(SegmenterConfig().rest_s * FPS)
    for frame, _ in fast:  # ... with it, while the rest is still being confirmed
        assert frame not in fast_inferences
        assert any(frame - rest_frames <= i < frame for i in fast_inferences)
    assert pipeline.speculations == len(fast_inferences)
    assert pipeline.speculations - pipeline.speculations_discarded == len(fast)


def test_a_signer_who_moves_again_before_the_rest_ends_gets_the_whole_sign_read_again():
    settings = SegmenterConfig()
    segmenter = MotionSegmenter(settings)
    moving, still = 0.05, 0.0
    motion = [moving] * 20 + [still] * 8 + [moving] * 20 + [still] * 15  # a 0.27 s pause mid-sign
    candidates, closed = [], []
    for index, level in enumerate(motion):
        t = index / FPS
        segment = segmenter.update(t, level)
        if segment is not None:
            closed.append(segment)
        elif (candidate := segmenter.candidate(t)) is not None:
            candidates.append(candidate)
    assert len(closed) == 1
    first, last = candidates[0], candidates[-1]
    assert first != closed[0]  # the pause's candidate would have cut the sign short ...
    assert last == closed[0]  # ... the one after the final rest is the sign that closes
    assert first.end_s == pytest.approx(19 / FPS + settings.post_roll_s)
    assert closed[0] == Segment(0.0, 47 / FPS + settings.post_roll_s)


def test_the_pipeline_counts_a_thrown_away_speculation_and_publishes_the_whole_sign(backend):
    rng = np.random.default_rng([2026, 9])
    frames, [(start_s, end_s)] = render_sentence(["computer"], rng, (320, 240), FPS)
    middle = round((start_s + end_s) / 2 * FPS)
    pause = round(0.25 * FPS)  # longer than the post-roll, shorter than the rest
    stutter = np.concatenate(
        [frames[:middle], np.repeat(frames[middle : middle + 1], pause, 0), frames[middle:]]
    )
    plain, _, _ = _recognize(stutter, backend, speculate=False)
    fast, _, pipeline = _recognize(stutter, backend, speculate=True)

    def published(signs):
        return [(i, s.word, s.confidence, s.start_s, s.end_s) for i, s in signs]

    assert len(plain) == 1 and published(fast) == published(plain)
    assert pipeline.speculations_discarded == 1 and pipeline.speculations == 2
