"""Preprocessing matches WLASL: BGR order, x/255*2-1, short side 256, centre crop 224, ROI."""

import cv2
import numpy as np
import pytest

from edge.core.errors import BundleError
from edge.core.preprocess import FrameCropper, PreprocessParams, frames_to_clip, normalize_into


def _reference(frame: np.ndarray, short: int = 256, crop: int = 224) -> np.ndarray:
    """Straightforward re-implementation: resize the short side, centre crop (WLASL rounding)."""
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    resized = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
    rh, rw = resized.shape[:2]
    top, left = int(np.round((rh - crop) / 2)), int(np.round((rw - crop) / 2))
    return resized[top : top + crop, left : left + crop]


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (360, 640), (200, 150), (256, 256)])
def test_crop_matches_reference_for_any_aspect(size):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    crop = FrameCropper(PreprocessParams())(frame)
    assert crop.shape == (224, 224, 3)
    assert np.array_equal(crop, _reference(frame))


def test_colour_order_stays_bgr_and_range_is_minus_one_to_one():
    frame = np.zeros((256, 256, 3), np.uint8)
    frame[..., 0] = 255  # blue in OpenCV's BGR
    frame[..., 2] = 0
    out = np.empty((3, 224, 224), np.float32)
    normalize_into(FrameCropper(PreprocessParams())(frame), out)
    assert out[0].min() == pytest.approx(1.0)
    assert out[1].max() == pytest.approx(-1.0)
    assert out[2].max() == pytest.approx(-1.0)
    grey = np.full((224, 224, 3), 51, np.uint8)
    normalize_into(grey, out)
    assert out.mean() == pytest.approx(51 / 255 * 2 - 1, abs=1e-6)


def test_centre_crop_keeps_the_centre_and_drops_the_sides():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :40] = 255  # a stripe at the far left is cropped away
    cv2.circle(frame, (320, 240), 20, (0, 255, 0), -1)
    crop = FrameCropper(PreprocessParams())(frame)
    assert crop[..., 0].max() == 0
    assert crop[112, 112, 1] == 255


def test_roi_selects_the_region_before_resizing():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 320:] = (0, 0, 200)  # right half red
    params = PreprocessParams(roi=(0.5, 0.0, 0.5, 1.0))
    crop = FrameCropper(params)(frame)
    assert crop.shape == (224, 224, 3)
    assert np.all(crop[..., 2] == 200)
    assert np.all(FrameCropper(PreprocessParams())(frame)[:, :50, 2] == 0)


def test_geometry_is_replanned_when_the_frame_size_changes():
    cropper = FrameCropper(PreprocessParams(resize_short_side=240))
    small = np.full((300, 400, 3), 10, np.uint8)
    large = np.full((720, 1280, 3), 90, np.uint8)
    assert cropper(small).mean() == 10
    assert cropper(large).mean() == 90
    assert np.array_equal(cropper(large), _reference(large, short=240))


def test_frames_to_clip_layout():
    crops = [np.full((224, 224, 3), i * 50, np.uint8) for i in range(4)]
    crops[0][..., 2] = 255
    clip = frames_to_clip(crops)
    assert clip.shape == (1, 3, 4, 224, 224)
    assert clip.dtype == np.float32
    assert clip[0, 2, 0].min() == pytest.approx(1.0)
    assert clip[0, 0, 3].mean() == pytest.approx(150 / 255 * 2 - 1, abs=1e-6)
    again = frames_to_clip(crops, clip)
    assert again is clip


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"resize_short_side": 200}, "at least crop_size"),
        ({"roi": (0.5, 0, 0.6, 1)}, "roi"),
        ({"roi": (0, 0, 0, 1)}, "roi"),
    ],
)
def test_invalid_params(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        PreprocessParams(**kwargs)


def test_manifest_round_trip_and_errors():
    params = PreprocessParams(resize_short_side=300, roi=(0.1, 0.2, 0.5, 0.5))
    assert PreprocessParams.from_dict(params.to_dict()) == params
    with pytest.raises(BundleError, match="unknown keys"):
        PreprocessParams.from_dict({"mean": 0.5})
    with pytest.raises(BundleError, match="invalid"):
        PreprocessParams.from_dict({"crop_size": "big"})


def test_rejects_non_bgr_frames():
    with pytest.raises(ValueError, match="BGR uint8"):
        FrameCropper(PreprocessParams())(np.zeros((480, 640), np.uint8))
