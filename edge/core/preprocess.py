"""Frame preprocessing, identical to what WLASL checkpoints were trained and tested on.

A frame is a BGR ``uint8`` image as OpenCV decodes it (WLASL's video loader never swaps to RGB).
Steps: optional region of interest, resize so the short side is ``resize_short_side`` (bilinear),
centre crop ``crop_size`` square, then ``x / 255 * 2 - 1``. The crop is taken once per frame as
``uint8`` and only converted to float when written into a clip buffer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from edge.core.errors import BundleError


@dataclass(frozen=True)
class PreprocessParams:
    """Preprocessing recorded in a bundle's manifest.

    ``roi`` is ``(x, y, width, height)`` as fractions of the frame, so that one setting serves
    every camera resolution; ``None`` uses the whole frame.
    """

    resize_short_side: int = 256
    crop_size: int = 224
    roi: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")
        if self.resize_short_side < self.crop_size:
            raise ValueError(
                f"resize_short_side ({self.resize_short_side}) must be at least crop_size ({self.crop_size})"
            )
        if self.roi is not None:
            x, y, w, h = self.roi
            if not (0 <= x < 1 and 0 <= y < 1 and w > 0 and h > 0 and x + w <= 1 and y + h <= 1):
                raise ValueError(
                    f"roi must be (x, y, width, height) fractions inside the frame, got {self.roi}"
                )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["roi"] = list(self.roi) if self.roi is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessParams:
        known = {"resize_short_side", "crop_size", "roi"}
        unknown = set(data) - known
        if unknown:
            raise BundleError(f"manifest preprocessing has unknown keys: {sorted(unknown)}")
        roi = data.get("roi")
        try:
            return cls(
                resize_short_side=int(data.get("resize_short_side", 256)),
                crop_size=int(data.get("crop_size", 224)),
                roi=tuple(float(v) for v in roi) if roi is not None else None,  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            raise BundleError(f"manifest preprocessing is invalid: {exc}") from exc


class FrameCropper:
    """Turns BGR frames of any size into ``(crop, crop, 3)`` uint8 crops.

    The geometry (ROI pixels, resized size, crop offsets) is computed once per frame size, since a
    stream keeps its size.
    """

    def __init__(self, params: PreprocessParams) -> None:
        self.params = params
        self._frame_shape: tuple[int, ...] | None = None
        self._roi_slices: tuple[slice, slice] = (slice(None), slice(None))
        self._resized_wh: tuple[int, int] = (0, 0)
        self._crop_yx: tuple[int, int] = (0, 0)

    def _plan(self, shape: tuple[int, ...]) -> None:
        height, width = shape[:2]
        if self.params.roi is None:
            x0, y0, x1, y1 = 0, 0, width, height
        else:
            fx, fy, fw, fh = self.params.roi
            x0, y0 = round(fx * width), round(fy * height)
            x1 = max(x0 + 1, round((fx + fw) * width))
            y1 = max(y0 + 1, round((fy + fh) * height))
        self._roi_slices = (slice(y0, y1), slice(x0, x1))
        roi_h, roi_w = y1 - y0, x1 - x0
        scale = self.params.resize_short_side / min(roi_h, roi_w)
        resized_w = max(self.params.crop_size, round(roi_w * scale))
        resized_h = max(self.params.crop_size, round(roi_h * scale))
        self._resized_wh = (resized_w, resized_h)
        crop = self.params.crop_size
        # Same rounding as WLASL's CenterCrop (numpy round of the half difference).
        self._crop_yx = (int(np.round((resized_h - crop) / 2)), int(np.round((resized_w - crop) / 2)))
        self._frame_shape = shape

    def crop_box(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Where the crop lies in a frame of ``shape``: ``(x, y, width, height)`` in its pixels."""
        if shape != self._frame_shape:
            self._plan(shape)
        rows, columns = self._roi_slices
        x0, y0 = columns.start or 0, rows.start or 0
        roi_w = (columns.stop if columns.stop is not None else shape[1]) - x0
        roi_h = (rows.stop if rows.stop is not None else shape[0]) - y0
        scale_x, scale_y = roi_w / self._resized_wh[0], roi_h / self._resized_wh[1]
        top, left = self._crop_yx
        crop = self.params.crop_size
        return (
            round(x0 + left * scale_x),
            round(y0 + top * scale_y),
            round(crop * scale_x),
            round(crop * scale_y),
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Crop one BGR uint8 frame ``(H, W, 3)``; returns a ``(crop, crop, 3)`` uint8 array."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        if frame.shape != self._frame_shape:
            self._plan(frame.shape)
        region = frame[self._roi_slices]
        if (region.shape[1], region.shape[0]) != self._resized_wh:
            region = cv2.resize(region, self._resized_wh, interpolation=cv2.INTER_LINEAR)
        top, left = self._crop_yx
        crop = self.params.crop_size
        return region[top : top + crop, left : left + crop]


def normalize_into(crop: np.ndarray, out: np.ndarray) -> None:
    """Write a ``(H, W, 3)`` uint8 crop into ``out`` ``(3, H, W)`` float32 as ``x / 255 * 2 - 1``."""
    np.multiply(crop.transpose(2, 0, 1), np.float32(2.0 / 255.0), out=out, casting="unsafe")
    out -= np.float32(1.0)


def frames_to_clip(crops: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Stack T uint8 crops into a model input ``(1, 3, T, H, W)`` float32, reusing ``out``."""
    size = crops[0].shape[0]
    shape = (1, 3, len(crops), size, size)
    if out is None or out.shape != shape:
        out = np.empty(shape, dtype=np.float32)
    for index, crop in enumerate(crops):
        normalize_into(crop, out[0, :, index])
    return out
