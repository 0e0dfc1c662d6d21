"""Training augmentations of a clip's crops: small, standard, and seeded per example.

A few clips per word teach a model little unless each is seen in slightly different forms. Three
standard video augmentations, all mild, none that changes what a sign means:

- time: a random span of the clip, from a little inside it to a little beyond its ends (the first
  or last frame repeated, as a longer rest would look), resampled to the same T frames;
- space: a random zoom of 0.9-1.1 and a shift of up to 12 pixels (about 5% of 224), the border
  reflected, as a signer standing a little nearer, farther or off centre would look;
- light: a random gain of 0.8-1.2 and offset of up to 20 grey levels.

No horizontal flip: a mirrored sign is a left-handed signer's, exactly what the field clips teach;
flipping would hide how much the field data contributes. The same ``rng`` gives the same result, so
a resumed or distributed run augments each example exactly as an uninterrupted one.
"""

from __future__ import annotations

import cv2
import numpy as np

SPAN_START = (-0.15, 0.1)  # fractions of the clip's length
SPAN_END = (0.9, 1.15)
ZOOM = (0.9, 1.1)
SHIFT_FRACTION = 0.055
GAIN = (0.8, 1.2)
OFFSET = 20.0


def temporal_jitter(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``crops`` (T, H, W, 3) resampled over a random span around the clip's own."""
    last = len(crops) - 1
    start, end = rng.uniform(*SPAN_START) * last, rng.uniform(*SPAN_END) * last
    positions = np.clip(np.round(np.linspace(start, end, len(crops))), 0, last).astype(int)
    return crops[positions]


def spatial_jitter(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every frame zoomed and shifted by the same random amount (reflected borders)."""
    height, width = crops.shape[1:3]
    zoom = rng.uniform(*ZOOM)
    dx, dy = rng.uniform(-SHIFT_FRACTION, SHIFT_FRACTION, 2) * (width, height)
    matrix = np.array(
        [[zoom, 0.0, (1.0 - zoom) * width / 2 + dx], [0.0, zoom, (1.0 - zoom) * height / 2 + dy]],
        dtype=np.float32,
    )
    return np.stack(
        [
            cv2.warpAffine(
                frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            for frame in crops
        ]
    )


def light_jitter(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random gain and offset of the grey levels, through a lookup table (exact in uint8)."""
    gain, offset = rng.uniform(*GAIN), rng.uniform(-OFFSET, OFFSET)
    table = np.clip(np.arange(256) * gain + offset, 0, 255).round().astype(np.uint8)
    return table[crops]


def augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of a ``(T, H, W, 3)`` uint8 clip; ``crops`` is left unchanged."""
    return light_jitter(spatial_jitter(temporal_jitter(crops, rng), rng), rng)
