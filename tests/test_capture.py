"""Capture through real GStreamer: files, the live test source, errors and restarts."""

import itertools
import time

import cv2
import numpy as np
import pytest

from edge.core.config import SourceConfig
from edge.runtime.capture import Capture, CaptureError, pipeline_for
from tests.conftest import moving_blob_frames, write_video


def _collect(capture: Capture, limit: int = 1000, timeout_s: float = 20.0) -> list:
    frames, started = [], time.monotonic()
    for frame in capture.frames(timeout_s=0.2):
        if frame is not None:
            frames.append(frame)
        if len(frames) >= limit or time.monotonic() - started > timeout_s:
            break
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("capture") / "blob.mp4"
    return write_video(path, moving_blob_frames(45, size=(320, 240), colour=(255, 0, 0), seed=3))


def test_file_source_gives_every_frame_in_bgr_with_timestamps(video):
    capture = Capture(SourceConfig(uri=f"file://{video}", realtime=False)).start()
    frames = _collect(capture)
    capture.close()
    assert len(frames) == 45
    assert capture.health().worker.state == "stopped"
    assert [f.index for f in frames] == list(range(45))
    assert frames[1].timestamp_s == pytest.approx(1 / 30, abs=1e-3)
    assert frames[-1].timestamp_s == pytest.approx(44 / 30, abs=1e-3)
    reference = cv2.VideoCapture(str(video))
    ok, first = reference.read()
    assert ok
    assert frames[0].image.shape == (240, 320, 3)
    # One copy per frame: the image is a read-only view of the bytes taken out of GStreamer's buffer.
    assert not frames[0].image.flags.owndata and not frames[0].image.flags.writeable
    assert np.abs(frames[0].image.astype(int) - first.astype(int)).mean() < 3
    assert capture.stats.frames_dropped == 0


def test_realtime_file_plays_at_its_frame_rate(video):
    started = time.monotonic()
    capture = Capture(SourceConfig(uri=f"file://{video}")).start()
    frames = _collect(capture)
    capture.close()
    assert len(frames) >= 44
    assert time.monotonic() - started >= 1.2  # 45 frames at 30 fps


def test_a_looping_file_starts_a_new_epoch_on_one_stream_clock(video):
    capture = Capture(SourceConfig(uri=f"file://{video}", realtime=False, loop=True)).start()
    frames = _collect(capture, limit=100)
    capture.close()
    assert len(frames) == 100
    assert [f.epoch for f in frames] == [0] * 45 + [1] * 45 + [2] * 10
    assert (frames[50].index, frames[50].epoch) == (5, 1)
    # Buffer timestamps start again at every loop; the stream clock goes on, one frame later.
    stamps = [f.timestamp_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert frames[45].timestamp_s == pytest.approx(frames[44].timestamp_s + 1 / 30, abs=1e-3)


def _wait_until(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_live_test_source_drops_the_oldest_when_nobody_reads():
    capture = Capture(SourceConfig(uri="test://", width=160, height=120, fps=30, queue_frames=4)).start()
    assert _wait_until(lambda: capture.stats.frames_dropped >= 15), capture.stats
    frames = _collect(capture, limit=4)
    capture.close()
    assert [f.image.shape for f in frames] == [(120, 160, 3)] * 4
    # The queue kept the newest four, in order: at least the 15 dropped came before them.
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + 4))
    assert frames[0].index >= 15


def test_failing_live_source_is_restarted_with_backoff():
    settings = SourceConfig(uri="v4l2:///dev/video-missing", reconnect_max_s=0.2)
    capture = Capture(settings).start()
    assert _wait_until(lambda: capture.stats.restarts >= 3, timeout_s=10)
    capture.close()
    assert capture.stats.last_error


def test_missing_file_ends_the_stream_with_the_error(tmp_path):
    capture = Capture(SourceConfig(uri=f"file://{tmp_path}/missing.mp4", realtime=False)).start()
    assert _collect(capture, timeout_s=10) == []
    capture.close()
    assert capture.health().worker.state == "stopped"
    assert capture.stats.last_error == "Resource not found."
    assert capture.stats.restarts == 0


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("csi://1", "nvarguscamerasrc sensor-id=1"),
        ("v4l2:///dev/video2", "v4l2src device=/dev/video2"),
        ("rtsp://cam/stream", "rtspsrc location=rtsp://cam/stream"),
        ("test://", "videotestsrc is-live=true"),
    ],
)
def test_uris_map_to_pipelines(uri, fragment):
    description = pipeline_for(SourceConfig(uri=uri))
    assert fragment in description
    assert description.endswith("sync=false")
    assert "appsink name=sink" in description


def test_bad_uris_are_refused():
    with pytest.raises(CaptureError, match="not a supported source"):
        pipeline_for(SourceConfig(uri="http://example/video"))
    with pytest.raises(CaptureError, match="appsink name=sink"):
        pipeline_for(SourceConfig(uri="gst:videotestsrc ! fakesink"))


def test_a_raw_gst_pipeline_that_ends_is_restarted_like_a_camera():
    pipeline = (
        "gst:videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48 ! videoconvert ! "
        "video/x-raw,format=BGR ! appsink name=sink"
    )
    capture = Capture(SourceConfig(uri=pipeline, reconnect_max_s=0.1)).start()
    frames = _collect(capture, limit=15, timeout_s=20)
    capture.close()
    assert len(frames) == 15 and capture.stats.restarts >= 2
    assert [f.epoch for f in frames] == [0] * 5 + [1] * 5 + [2] * 5
    assert capture.stats.last_error in (None, "the source ended (end of stream)")
