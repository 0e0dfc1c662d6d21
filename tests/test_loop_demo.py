"""The learning-loop demo's own bookkeeping (the loop itself, ~8 minutes, runs as `make demo-loop`):
balanced feedback sentences, the spans of a rendered multi-sentence video, and how a looping
kiosk's predictions are folded back onto one pass and scored."""

from __future__ import annotations

import collections

import cv2

from edge.demo.loop import SENTENCE_SIGNS, Rendered, _pass_score, balanced_sentences, render_sentences, score
from edge.demo.signer import GLOSSES


def test_feedback_sentences_hold_every_word_as_often_and_never_twice_in_one():
    sentences = balanced_sentences(5, seed=3)
    counts = collections.Counter(word for sentence in sentences for word in sentence)
    assert counts == {word: 5 for word in GLOSSES}
    assert all(len(s) == SENTENCE_SIGNS and len(set(s)) == SENTENCE_SIGNS for s in sentences)
    assert balanced_sentences(5, seed=3) == sentences != balanced_sentences(5, seed=4)


def test_sentences_rendered_into_one_video_keep_each_signs_span_on_its_clock(tmp_path):
    rendered = render_sentences(tmp_path / "two.mp4", [["book", "chair"], ["who", "go"]], 5, "left")
    capture = cv2.VideoCapture(str(rendered.path))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert rendered.words == ["book", "chair", "who", "go"]
    assert rendered.duration_s == frames / 30.0
    starts = [start for start, _ in rendered.spans_s]
    assert starts == sorted(starts) and rendered.spans_s[-1][1] < rendered.duration_s
    assert rendered.spans_s[2][0] > rendered.spans_s[1][1]  # the second sentence follows the first


def test_a_looping_kiosks_predictions_are_scored_on_one_pass(tmp_path):
    rendered = Rendered(tmp_path / "unused.mp4", ["book", "chair"], [(1.0, 2.0), (3.0, 4.0)], 5.0)
    second_pass = [
        {"start_s": 6.1, "end_s": 7.1, "word": "book"},  # 1.1-2.1 in the pass: right
        {"start_s": 8.0, "end_s": 9.0, "word": "go"},  # 3.0-4.0: wrong
    ]
    assert _pass_score(second_pass, rendered) == (1, 2)
    assert score([{"start_s": 3.5, "end_s": 3.9, "word": "chair"}], rendered) == (
        1,
        2,
    )  # a missed sign counts
