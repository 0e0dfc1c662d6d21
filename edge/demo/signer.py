"""A drawn signer performing 12 made-up gestures, so that videos come with known answers.

PLACEHOLDER NAMES: the gestures are named after WLASL glosses only so that class indices line up
with a WLASL-style label list. They are NOT real ASL signs, do not resemble how these words are
signed, and must never be used to learn, teach or judge American Sign Language. They exist so the
project can train, calibrate and test end to end without shipping sign-language recordings.

The gestures differ in where the hands go (chest, chin, mouth, the other shoulder, beside or
above the head, waist, out to the side), in the path (line, arc, circle, taps, waves), in the hand
shape (open palm, fist, pointing finger, two fingers) and in using one hand or two.

Geometry: the figure is laid out in body units, where 1.0 is the side of the frame's central
square (side ``min(width, height)``) and (0, 0) is the frame centre, y down. Preprocessing resizes
the short side to 256 and centre-crops 224, i.e. keeps the central 7/8 of that square; the whole
figure, hands at their extremes included, stays inside the central 85 % of it for every frame size
and aspect ratio. The signer's right hand leads; it appears on the left of the image. A
left-handed signer (``handedness="left"``) is that signer's mirror image: the same plan painted
and then flipped left to right, so the left hand leads, and the same random draws give exactly the
mirrored pixels (about 10% of people sign with the left hand dominant).

Speed: everything random is drawn when a ``Video`` is planned; painting a frame is a copy of the
background and a few dozen anti-aliased OpenCV primitives at sub-pixel precision.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
import numpy.typing as npt

GLOSSES: tuple[str, ...] = (
    "book",
    "drink",
    "computer",
    "before",
    "chair",
    "go",
    "clothes",
    "who",
    "candy",
    "cousin",
    "deaf",
    "fine",
)

HANDEDNESS: tuple[str, ...] = ("right", "left")
"""Which hand leads; "left" is the right-handed signer's mirror image."""

SAFE_HALF = 0.425
"""Half side, in body units, of the central 85 % of the central square that holds the figure."""
MIN_SIDE = 16
SIGN_SECONDS = (0.8, 2.5)
CLIP_REST_SECONDS = (0.2, 0.5)
SENTENCE_REST_SECONDS = (0.6, 1.5)

Color = tuple[float, float, float]
Size = tuple[int, int]
"""(width, height) in pixels."""
Rng = np.random.Generator
Points = np.ndarray
"""Positions as an (n, 2) float array of (x, y)."""
Fixed = tuple[int, int]
"""A pixel position in OpenCV fixed point (``_SHIFT`` fractional bits)."""


class HandShape(IntEnum):
    RELAXED = 0
    OPEN = 1
    FIST = 2
    POINT = 3
    V = 4


# Body layout in body units; single points are for the right side (image left), mirrored for the
# left. Arms and hands move; the rest of the body only sways.
SHOULDER = np.array([-0.12, -0.06])
REST_HAND = np.array([-0.17, 0.27])
UPPER_ARM = 0.18
FOREARM = 0.18
SLEEVE_WIDTH = 0.05
FOREARM_WIDTH = 0.04
TORSO_RIGHT_HALF = np.array(
    [[-0.035, -0.1], [-0.1, -0.09], [-0.14, -0.065], [-0.15, -0.02], [-0.135, 0.1], [-0.125, 0.33]]
)
TORSO = np.concatenate([TORSO_RIGHT_HALF, TORSO_RIGHT_HALF[::-1] * [-1.0, 1.0]])
COLLAR = np.array([[-0.03, -0.1], [0.03, -0.1], [0.0, -0.06]])
SHOULDER_RADIUS = 0.035
NECK = np.array([[0.0, -0.14], [0.0, -0.09]])
NECK_WIDTH = 0.05
HAIR_CENTER, HAIR_AXES = (0.0, -0.215), (0.064, 0.068)
FACE_CENTER, FACE_AXES = (0.0, -0.195), (0.055, 0.07)
EAR, EAR_RADIUS = np.array([-0.057, -0.195]), 0.012
EYE, EYE_RADIUS = np.array([-0.021, -0.205]), 0.0065
MOUTH = np.array([[-0.016, -0.155], [0.016, -0.155]])
MOUTH_WIDTH = 0.005

# Hand shapes, in body units (times HAND_SIZE) from the palm centre along the hand's direction.
HAND_SIZE = 1.15
PALM_AXES = (0.025, 0.021)
KNUCKLES_RADIUS = 0.025
FINGER_WIDTH = 0.011
OPEN_FINGERS = (-0.45, -0.15, 0.15, 0.45)
V_FINGERS = (-0.28, 0.28)
THUMB_TURN = 1.2
HAND_REACH = 0.074 * HAND_SIZE
"""Palm centre to the outer edge of the farthest fingertip of any hand shape."""

ELBOW_POLE = np.array([-0.4, 1.0, -0.6])
"""Where the right elbow prefers to point in 3D: down, outward and backward."""
SIGNING_DEPTH = 0.09
"""How far in front of the shoulders the hands come while signing; bends the arms naturally."""
BODY_SWAY = 0.0015
HAND_JITTER = 0.003

_SHIFT = 4
"""Fractional bits of the fixed-point coordinates given to OpenCV, for sub-pixel motion."""
_ONE = 1 << _SHIFT
_GRAIN_PAD = 16
_AA = cv2.LINE_AA


def _mirror(points: npt.ArrayLike) -> Points:
    return np.asarray(points) * np.array([-1.0, 1.0])


def _points(x: np.ndarray | float, y: np.ndarray | float) -> Points:
    xs, ys = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    return np.stack([xs, ys], axis=-1)


def _line(u: np.ndarray, start: tuple[float, float], end: tuple[float, float]) -> Points:
    return np.asarray(start) + np.outer(u, np.subtract(end, start))


def _circle(u: np.ndarray, center: tuple[float, float], radius: float, turns: float) -> Points:
    """Clockwise on screen, starting at the top of the circle."""
    angle = 2 * np.pi * turns * u
    return _points(center[0] + radius * np.sin(angle), center[1] - radius * np.cos(angle))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


# Gestures -----------------------------------------------------------------------------------
# A path maps motion progress u in [0, 1] to (right hand, left hand or None to keep it at rest).

PathPair = tuple[Points, Points | None]


def _book(u: np.ndarray) -> PathPair:
    """Palms together at the chest open apart twice, like covers."""
    spread = 0.12 * (1 - np.cos(3 * np.pi * u)) / 2
    right = _points(-0.03 - spread, 0.03 - 0.03 * np.sin(3 * np.pi * u) ** 2)
    return right, _mirror(right)


def _drink(u: np.ndarray) -> PathPair:
    """A fist rises from the chest to the mouth and drops back, twice."""
    rise = np.sin(2 * np.pi * u) ** 2
    return _points(-0.05 + 0.03 * rise, 0.06 - 0.21 * rise), None


def _computer(u: np.ndarray) -> PathPair:
    """A pointing finger draws one and a half big circles in front of the belly."""
    return _circle(u, (-0.04, 0.1), 0.08, 1.5), None


def _before(u: np.ndarray) -> PathPair:
    """An open palm sweeps in one line from the belly up past the right side of the head."""
    return _line(u, (0.0, 0.13), (-0.21, -0.2)), None


def _chair(u: np.ndarray) -> PathPair:
    """Two fingers tap twice on a fist held still at the chest."""
    right = _points(0.02, -0.005 + 0.045 * np.sin(2 * np.pi * u) ** 2)
    return right, _points(np.full_like(u, 0.06), 0.075)


def _go(u: np.ndarray) -> PathPair:
    """Both index fingers travel side by side in an arc, up and out to the left."""
    right = _line(u, (-0.1, 0.06), (0.1, -0.06)) - _points(0.0, 0.05 * np.sin(np.pi * u))
    return right, right + np.array([0.2, 0.0])


def _clothes(u: np.ndarray) -> PathPair:
    """Both open palms brush down the chest twice."""
    right = _points(-0.085, -0.02 + 0.15 * np.sin(2 * np.pi * u) ** 2)
    return right, _mirror(right)


def _who(u: np.ndarray) -> PathPair:
    """A pointing finger circles twice, small, at the chin."""
    return _circle(u, (-0.015, -0.125), 0.03, 2.0), None


def _candy(u: np.ndarray) -> PathPair:
    """A pointing finger reaches across the body and taps the left shoulder three times."""
    return _line(np.sin(3 * np.pi * u) ** 2, (0.12, 0.0), (0.15, -0.05)), None


def _cousin(u: np.ndarray) -> PathPair:
    """An open palm beside the head waves side to side three times."""
    return _points(-0.25 + 0.045 * np.sin(6 * np.pi * u), -0.19), None


def _deaf(u: np.ndarray) -> PathPair:
    """Both open palms above the head circle outwards, mirrored."""
    right = _circle(1 - u, (-0.09, -0.27), 0.025, 1.5)
    return right, _mirror(right)


def _fine(u: np.ndarray) -> PathPair:
    """An open palm sweeps across the waist from the left side to the far right."""
    return _line(u, (0.14, 0.13), (-0.28, 0.11)), None


@dataclass(frozen=True)
class Gesture:
    """A made-up gesture: hand shapes, hand paths over motion progress, a typical duration."""

    right_shape: HandShape
    left_shape: HandShape
    path: Callable[[np.ndarray], PathPair]
    seconds: float


_OPEN, _FIST, _POINT, _V, _RELAXED = (
    HandShape.OPEN,
    HandShape.FIST,
    HandShape.POINT,
    HandShape.V,
    HandShape.RELAXED,
)
GESTURES: dict[str, Gesture] = dict(
    zip(
        GLOSSES,
        (
            Gesture(_OPEN, _OPEN, _book, 1.6),
            Gesture(_FIST, _RELAXED, _drink, 1.5),
            Gesture(_POINT, _RELAXED, _computer, 1.7),
            Gesture(_OPEN, _RELAXED, _before, 1.2),
            Gesture(_V, _FIST, _chair, 1.5),
            Gesture(_POINT, _POINT, _go, 1.3),
            Gesture(_OPEN, _OPEN, _clothes, 1.6),
            Gesture(_POINT, _RELAXED, _who, 1.6),
            Gesture(_POINT, _RELAXED, _candy, 1.6),
            Gesture(_OPEN, _RELAXED, _cousin, 1.6),
            Gesture(_OPEN, _OPEN, _deaf, 1.8),
            Gesture(_OPEN, _RELAXED, _fine, 1.3),
        ),
        strict=True,
    )
)


def gesture_for(word: str) -> Gesture:
    try:
        return GESTURES[word]
    except KeyError:
        raise ValueError(f"unknown gesture {word!r}; known: {', '.join(GLOSSES)}") from None


# Timelines ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Poses:
    """Per-frame hand positions ((n, 2), body units) and hand shapes ((n,) HandShape codes)."""

    right: Points
    left: Points
    right_shape: np.ndarray
    left_shape: np.ndarray

    def __len__(self) -> int:
        return len(self.right)

    @classmethod
    def rest(cls, frames: int) -> Poses:
        relaxed = np.full(frames, HandShape.RELAXED, np.int8)
        right = np.tile(REST_HAND, (frames, 1))
        return cls(right, _mirror(right), relaxed, relaxed.copy())

    @classmethod
    def concat(cls, parts: Sequence[Poses]) -> Poses:
        return cls(
            np.concatenate([p.right for p in parts]),
            np.concatenate([p.left for p in parts]),
            np.concatenate([p.right_shape for p in parts]),
            np.concatenate([p.left_shape for p in parts]),
        )


def _hand_track(path: Points | None, away: np.ndarray, rest: np.ndarray) -> Points:
    """Blends from rest (away = 0) to the gesture path (away = 1)."""
    if path is None:
        return np.tile(rest, (len(away), 1))
    return rest + (path - rest) * away[:, None]


def _hand_shapes(shape: HandShape, away: np.ndarray) -> np.ndarray:
    return np.where(away >= 0.5, shape, HandShape.RELAXED).astype(np.int8)


def plan_sign(word: str, rng: Rng, fps: float) -> Poses:
    """One sign from leaving rest to being back at rest; every frame is off the rest pose.

    The hands ease from rest to the path's start, follow the path (eased), and ease back.
    """
    gesture = gesture_for(word)
    seconds = float(np.clip(gesture.seconds / rng.uniform(0.7, 1.45), *SIGN_SECONDS))
    frames = max(2, round(seconds * fps))
    enter, leave = rng.uniform(0.17, 0.27, size=2)
    t = np.arange(1, frames + 1) / (frames + 1)
    progress = _smoothstep(np.clip((t - enter) / (1 - enter - leave), 0, 1))
    leaving = _smoothstep(np.clip(t / enter, 0, 1))
    returning = _smoothstep(np.clip((1 - t) / leave, 0, 1))
    away = np.minimum(leaving, returning)
    right_path, left_path = gesture.path(progress)
    left_shape = gesture.left_shape if left_path is not None else HandShape.RELAXED
    return Poses(
        _hand_track(right_path, away, REST_HAND),
        _hand_track(left_path, away, _mirror(REST_HAND)),
        _hand_shapes(gesture.right_shape, away),
        _hand_shapes(left_shape, away),
    )


def _rest(rng: Rng, fps: float, seconds: tuple[float, float]) -> Poses:
    return Poses.rest(max(1, round(rng.uniform(*seconds) * fps)))


def plan_signs(
    words: Sequence[str], rng: Rng, fps: float, rest_seconds: tuple[float, float]
) -> tuple[Poses, list[tuple[float, float]]]:
    """Rest, then each sign followed by rest; returns the poses and each sign's span in seconds."""
    parts = [_rest(rng, fps, rest_seconds)]
    spans = []
    start = len(parts[0])
    for word in words:
        sign = plan_sign(word, rng, fps)
        rest = _rest(rng, fps, rest_seconds)
        spans.append((start / fps, (start + len(sign)) / fps))
        parts += [sign, rest]
        start += len(sign) + len(rest)
    return Poses.concat(parts), spans


# Arms ---------------------------------------------------------------------------------------


def _hand_depth(hands: Points, rest: np.ndarray) -> np.ndarray:
    """Hands come forward as they leave rest; the depth decides how the elbows bend."""
    away = np.clip(np.linalg.norm(hands - rest, axis=1) / 0.15, 0, 1)
    return 0.03 + (SIGNING_DEPTH - 0.03) * away


def _elbows(shoulder: np.ndarray, hands: Points, depth: np.ndarray, pole: np.ndarray) -> Points:
    """Two-bone inverse kinematics in 3D, projected to the image.

    In 3D the elbow lies on a circle around the shoulder-hand axis; taking the point nearest the
    pole moves continuously, unlike the two discrete solutions of 2D IK, so elbows never flip.
    """
    planar = hands - shoulder
    reach = 0.98 * (UPPER_ARM + FOREARM)
    depth = np.minimum(depth, np.sqrt(np.maximum(reach**2 - (planar**2).sum(axis=1), 0)))
    target = np.column_stack([planar, depth])
    distance = np.maximum(np.linalg.norm(target, axis=1), 1e-6)
    axis = target / distance[:, None]
    capped = np.minimum(distance, UPPER_ARM + FOREARM)
    along = (UPPER_ARM**2 + capped**2 - FOREARM**2) / (2 * capped)
    radius = np.sqrt(np.maximum(UPPER_ARM**2 - along**2, 0))
    perpendicular = pole - (axis @ pole)[:, None] * axis
    perpendicular /= np.maximum(np.linalg.norm(perpendicular, axis=1), 1e-9)[:, None]
    return shoulder + (axis * along[:, None] + perpendicular * radius[:, None])[:, :2]


def right_elbows(hands: Points) -> Points:
    return _elbows(SHOULDER, hands, _hand_depth(hands, REST_HAND), ELBOW_POLE)


def left_elbows(hands: Points) -> Points:
    pole = ELBOW_POLE * np.array([-1.0, 1.0, 1.0])
    return _elbows(_mirror(SHOULDER), hands, _hand_depth(hands, _mirror(REST_HAND)), pole)


def _figure_box() -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of everything the figure can draw, over every gesture."""
    head_top = HAIR_CENTER[1] - HAIR_AXES[1]
    points = [TORSO_RIGHT_HALF, np.array([[0.0, head_top]])]
    for word in GLOSSES:
        sign = plan_sign(word, np.random.default_rng(0), 120.0)
        for hands, elbows_of in ((sign.right, right_elbows), (sign.left, left_elbows)):
            elbows = elbows_of(hands)
            points += [hands - HAND_REACH, hands + HAND_REACH]
            points += [elbows - SLEEVE_WIDTH, elbows + SLEEVE_WIDTH]
    stacked = np.concatenate(points)
    margin = 2 * (BODY_SWAY + HAND_JITTER)
    x0, y0 = stacked.min(axis=0) - margin
    x1, y1 = stacked.max(axis=0) + margin
    half_width = max(-x0, x1)
    return -float(half_width), float(y0), float(half_width), float(y1)


FIGURE_BOX = _figure_box()
"""Extent (x0, y0, x1, y1) of the figure at scale 1, symmetric in x."""


def place_figure(rng: Rng, size: Size) -> tuple[tuple[float, float], float]:
    """A random scale and shift that keep FIGURE_BOX inside the safe square.

    Returns the pixel position of the body origin and the pixels per body unit.
    """
    width, height = size
    side = min(width, height)
    x0, y0, x1, y1 = FIGURE_BOX
    scale = min(2 * SAFE_HALF / (x1 - x0), 2 * SAFE_HALF / (y1 - y0)) * rng.uniform(0.82, 1.0)
    shift_x = rng.uniform(-SAFE_HALF - x0 * scale, SAFE_HALF - x1 * scale)
    shift_y = rng.uniform(-SAFE_HALF - y0 * scale, SAFE_HALF - y1 * scale)
    return (width / 2 + shift_x * side, height / 2 + shift_y * side), scale * side


# Look ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lighting:
    contrast: float
    brightness: float
    gains: tuple[float, float, float]

    @classmethod
    def sample(cls, rng: Rng) -> Lighting:
        blue, green, red = (float(g) for g in rng.uniform(0.92, 1.08, size=3))
        return cls(float(rng.uniform(0.8, 1.15)), float(rng.uniform(-30, 30)), (blue, green, red))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Contrast about mid-grey, brightness and a colour cast; for images and colours alike."""
        lit = ((image - 128.0) * self.contrast + 128.0 + self.brightness) * np.array(self.gains)
        return np.clip(lit, 0, 255)

    def color(self, bgr: Color) -> Color:
        blue, green, red = self.apply(np.array(bgr, float)).tolist()
        return (blue, green, red)


@dataclass(frozen=True)
class Palette:
    skin: Color
    skin_shade: Color
    hair: Color
    shirt: Color
    sleeve: Color
    forearm: Color
    eyes: Color
    lips: Color


SKIN_TONES: tuple[Color, ...] = (
    (196, 224, 255),
    (160, 200, 240),
    (125, 194, 241),
    (105, 172, 224),
    (66, 134, 198),
    (36, 85, 141),
    (30, 58, 92),
)
HAIR_TONES: tuple[Color, ...] = (
    (20, 20, 25),
    (30, 45, 70),
    (40, 70, 110),
    (90, 170, 210),
    (150, 150, 155),
    (40, 70, 160),
)


def _random_hsv(rng: Rng, saturation: tuple[float, float], value: tuple[float, float]) -> Color:
    hue = rng.uniform()
    red, green, blue = colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value))
    return (255 * blue, 255 * green, 255 * red)


def _near(rng: Rng, tones: Sequence[Color], spread: float) -> Color:
    tone = np.array(tones[int(rng.integers(len(tones)))]) + rng.uniform(-spread, spread, 3)
    blue, green, red = np.clip(tone, 0, 255).tolist()
    return (blue, green, red)


def _scaled(color: Color, factors: tuple[float, float, float]) -> Color:
    return (color[0] * factors[0], color[1] * factors[1], color[2] * factors[2])


def _luma(color: Color) -> float:
    blue, green, red = color
    return 0.114 * blue + 0.587 * green + 0.299 * red


def _contrasting(draw: Callable[[], Color], avoid: Sequence[Color], luma_gap: float) -> Color:
    """Draws colours until one's brightness differs by ``luma_gap`` from all of ``avoid``.

    Brightness, not hue, is what a grey-level motion detector and a small network see; gives up
    after 100 draws and keeps the last.
    """
    color = draw()
    for _ in range(100):
        if all(abs(_luma(color) - _luma(other)) >= luma_gap for other in avoid):
            break
        color = draw()
    return color


def _sample_palette(rng: Rng, lighting: Lighting) -> tuple[Palette, Color]:
    """Lit figure colours, and an unlit wall colour whose brightness stays apart from theirs."""
    skin = _near(rng, SKIN_TONES, 10)
    hair = _near(rng, HAIR_TONES, 12)
    shirt = _contrasting(lambda: _random_hsv(rng, (0.2, 0.9), (0.15, 0.95)), [skin], 50)
    wall = _contrasting(lambda: _random_hsv(rng, (0.0, 0.6), (0.1, 0.95)), [skin, shirt], 35)
    sleeve = _scaled(shirt, (0.8, 0.8, 0.8))
    forearm = sleeve if rng.uniform() < 0.6 else skin
    shade = _scaled(skin, (0.72, 0.72, 0.72))
    lips = _scaled(skin, (0.6, 0.6, 0.85))
    colors = (skin, shade, hair, shirt, sleeve, forearm, (35.0, 30.0, 30.0), lips)
    return Palette(*(lighting.color(c) for c in colors)), wall


def _smooth_noise(rng: Rng, size: Size, cells: int, channels: int) -> np.ndarray:
    width, height = size
    grid = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    noise = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return noise.reshape(height, width, channels)


def _background(rng: Rng, size: Size, wall: Color, lighting: Lighting) -> np.ndarray:
    """A wall: base colour, a gradient, soft blotches, fine texture and a few faint panels."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)
    image = np.empty((height, width, 3), np.float32)
    image[...] = np.array(wall, np.float32)
    image += (ramp * rng.uniform(0, 60))[..., None]
    image += _smooth_noise(rng, size, 6, 3) * rng.uniform(2, 12)
    image += _smooth_noise(rng, size, max(8, min(size) // 6), 1) * rng.uniform(0, 6)
    for _ in range(rng.integers(0, 4)):
        x0, x1 = np.sort(rng.uniform(0, width, 2)).astype(int)
        y0, y1 = np.sort(rng.uniform(0, height, 2)).astype(int)
        image[y0:y1, x0:x1] += rng.uniform(-25, 25)
    return lighting.apply(image).astype(np.uint8)


@dataclass(frozen=True)
class Distractor:
    """A small shape drifting slowly across the background, bouncing off the frame's edges.

    Small and slow on purpose: a motion detector must not mistake it for signing.
    """

    start: tuple[float, float]
    velocity: tuple[float, float]
    radius: float
    sides: int
    """0 for a disc, else a regular polygon."""
    color: Color

    @classmethod
    def sample(cls, rng: Rng, size: Size, lighting: Lighting) -> Distractor:
        side = min(size)
        heading = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.01, 0.04) * side
        return cls(
            (rng.uniform(0, size[0]), rng.uniform(0, size[1])),
            (speed * math.cos(heading), speed * math.sin(heading)),
            rng.uniform(0.012, 0.025) * side,
            int(rng.choice([0, 3, 4])),
            lighting.color(_random_hsv(rng, (0.2, 0.9), (0.3, 0.9))),
        )

    def centers(self, frames: int, fps: float, size: Size) -> np.ndarray:
        seconds = np.arange(frames)[:, None] / fps
        travelled = np.array(self.start) + np.array(self.velocity) * seconds
        span = np.array(size, float)
        return span - np.abs(np.mod(travelled, 2 * span) - span)


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything about a video that does not change over time: look, camera and placement."""

    size: Size
    background: np.ndarray
    palette: Palette
    origin: tuple[float, float]
    """Pixel position of the body origin."""
    unit: float
    """Pixels per body unit."""
    distractor: Distractor | None
    blur_sigma: float
    grain: np.ndarray | None
    """Camera noise: a tile of values 0..k, larger than the frame, added and subtracted at random
    offsets each frame (zero-mean noise for the price of two saturating adds)."""

    @classmethod
    def sample(cls, rng: Rng, size: Size = (640, 480)) -> Scene:
        width, height = size
        if min(size) < MIN_SIDE:
            raise ValueError(f"frames must be {MIN_SIDE} pixels or more each way, got {size}")
        lighting = Lighting.sample(rng)
        palette, wall = _sample_palette(rng, lighting)
        origin, unit = place_figure(rng, size)
        grain_shape = (height + _GRAIN_PAD, width + _GRAIN_PAD, 3)
        grain = rng.integers(0, rng.integers(2, 9) + 1, grain_shape, np.uint8)
        return cls(
            size=(width, height),
            background=_background(rng, size, wall, lighting),
            palette=palette,
            origin=origin,
            unit=unit,
            distractor=Distractor.sample(rng, size, lighting),
            blur_sigma=float(rng.uniform(0.3, 1.0)) if rng.uniform() < 0.75 else 0.0,
            grain=grain,
        )

    def fixed(self, points: npt.ArrayLike) -> np.ndarray:
        """Body units to fixed-point pixels, as int32 arrays of the same shape."""
        pixels = np.array(self.origin) + np.asarray(points) * self.unit
        return np.round(pixels * _ONE).astype(np.int32)

    def fixed_length(self, length: float) -> int:
        return round(length * self.unit * _ONE)

    def thickness(self, width: float) -> int:
        """Line thickness in whole pixels (OpenCV takes no fixed point for it)."""
        return max(1, round(width * self.unit))


# Painting -----------------------------------------------------------------------------------


def _wobble(rng: Rng, frames: int, fps: float, amplitude: float, hz: tuple[float, float]) -> Points:
    """Smooth random motion: three sinusoids per axis."""
    t = np.arange(frames)[:, None, None] / fps
    freq = rng.uniform(*hz, size=(3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
    return amplitude / math.sqrt(3) * np.sin(2 * np.pi * freq * t + phase).sum(axis=1)


def _jittered(rng: Rng, hands: Points, rest: np.ndarray, fps: float) -> Points:
    """Hands tremble a little while signing and are perfectly still at rest."""
    activity = np.clip(np.linalg.norm(hands - rest, axis=1) / 0.05, 0, 1)[:, None]
    return hands + _wobble(rng, len(hands), fps, HAND_JITTER, (1.0, 4.0)) * activity


def _unit_vectors(vectors: Points) -> Points:
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(length > 1e-6, vectors / np.maximum(length, 1e-6), np.array([0.0, -1.0]))


def _as_fixed(points: np.ndarray) -> list[Fixed]:
    return [(x, y) for x, y in points.tolist()]


@dataclass(frozen=True, eq=False)
class _Arm:
    """One arm's per-frame fixed-point joints, hand centre in pixels and hand direction."""

    shoulder: list[Fixed]
    elbow: list[Fixed]
    wrist: list[Fixed]
    hand: np.ndarray
    direction: np.ndarray
    shape: list[int]
    thumb_side: float
    """+1 when the thumb is at the direction's clockwise side (right hand, palm out)."""

    @classmethod
    def plan(
        cls,
        scene: Scene,
        joints: tuple[np.ndarray, Points, Points],
        sway: Points,
        shapes: np.ndarray,
        thumb_side: float,
    ) -> _Arm:
        shoulder, elbows, hands = joints
        direction = _unit_vectors(hands - elbows)
        return cls(
            shoulder=_as_fixed(scene.fixed(shoulder + sway)),
            elbow=_as_fixed(scene.fixed(elbows + sway)),
            wrist=_as_fixed(scene.fixed(hands - 0.02 * direction + sway)),
            hand=np.array(scene.origin) + (hands + sway) * scene.unit,
            direction=direction,
            shape=shapes.tolist(),
            thumb_side=thumb_side,
        )


class Video:
    """A planned take: all randomness is drawn up front, frames are painted on demand."""

    def __init__(
        self,
        scene: Scene,
        poses: Poses,
        spans_s: Sequence[tuple[float, float]],
        fps: float,
        rng: Rng,
        handedness: str = "right",
    ) -> None:
        if handedness not in HANDEDNESS:
            raise ValueError(f"handedness must be one of {', '.join(HANDEDNESS)}, got {handedness!r}")
        self.scene = scene
        self.poses = poses
        self.spans_s = list(spans_s)
        self.fps = fps
        self.handedness = handedness
        self._unmirrored: np.ndarray | None = None  # left-handed: the frame before the flip
        frames = len(poses)
        sway = _wobble(rng, frames, fps, BODY_SWAY, (0.15, 0.6))
        right = _jittered(rng, poses.right, REST_HAND, fps)
        left = _jittered(rng, poses.left, _mirror(REST_HAND), fps)
        right_joints = (SHOULDER, right_elbows(right), right)
        left_joints = (_mirror(SHOULDER), left_elbows(left), left)
        self._right = _Arm.plan(scene, right_joints, sway, poses.right_shape, 1.0)
        self._left = _Arm.plan(scene, left_joints, sway, poses.left_shape, -1.0)
        self._body = _Body(scene)
        self._body_offsets = np.round(sway * scene.unit * _ONE).astype(np.int32)
        drifting = scene.distractor
        self._distractor = None if drifting is None else drifting.centers(frames, fps, scene.size)
        self._grain_offsets = rng.integers(0, _GRAIN_PAD + 1, (frames, 4)).tolist()

    @classmethod
    def clip(
        cls,
        word: str,
        rng: Rng,
        size: Size = (640, 480),
        fps: float = 30.0,
        handedness: str = "right",
    ) -> Video:
        """One sign between short rests."""
        return cls.sentence([word], rng, size, fps, CLIP_REST_SECONDS, handedness)

    @classmethod
    def sentence(
        cls,
        words: Sequence[str],
        rng: Rng,
        size: Size = (640, 480),
        fps: float = 30.0,
        rest_seconds: tuple[float, float] = SENTENCE_REST_SECONDS,
        handedness: str = "right",
    ) -> Video:
        """Signs one after another, with the hands resting still before, between and after.

        ``handedness`` changes no random draw, so "left" is the mirror of "right" frame for frame.
        """
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        for word in words:
            gesture_for(word)
        scene = Scene.sample(rng, size)
        poses, spans = plan_signs(words, rng, fps, rest_seconds)
        return cls(scene, poses, spans, fps, rng, handedness)

    def __len__(self) -> int:
        return len(self.poses)

    def render(self) -> np.ndarray:
        """All frames as one (N, H, W, 3) uint8 BGR array."""
        width, height = self.scene.size
        frames = np.empty((len(self), height, width, 3), np.uint8)
        for index in range(len(self)):
            self.paint(index, frames[index])
        return frames

    def frames(self) -> Iterator[np.ndarray]:
        """Frames one at a time, for videos too long to hold in memory."""
        width, height = self.scene.size
        for index in range(len(self)):
            frame = np.empty((height, width, 3), np.uint8)
            self.paint(index, frame)
            yield frame

    def paint(self, index: int, out: np.ndarray) -> None:
        """Draws frame ``index`` into ``out``, a contiguous (H, W, 3) uint8 array."""
        if self.handedness == "right":
            self._paint(index, out)
            return
        if self._unmirrored is None:
            self._unmirrored = np.empty_like(out)
        self._paint(index, self._unmirrored)
        cv2.flip(self._unmirrored, 1, dst=out)

    def _paint(self, index: int, out: np.ndarray) -> None:
        """The right-handed signer's frame ``index``."""
        scene = self.scene
        np.copyto(out, scene.background)
        if scene.distractor is not None and self._distractor is not None:
            _draw_distractor(out, scene.distractor, self._distractor[index])
        self._body.draw(out, self._body_offsets[index])
        for arm in (self._left, self._right):
            self._draw_arm(out, arm, index)
        if scene.blur_sigma > 0:
            cv2.GaussianBlur(out, (3, 3), scene.blur_sigma, dst=out)
        if scene.grain is not None:
            width, height = scene.size
            add_y, add_x, sub_y, sub_x = self._grain_offsets[index]
            cv2.add(out, scene.grain[add_y : add_y + height, add_x : add_x + width], dst=out)
            cv2.subtract(out, scene.grain[sub_y : sub_y + height, sub_x : sub_x + width], dst=out)

    def _draw_arm(self, out: np.ndarray, arm: _Arm, index: int) -> None:
        scene, palette = self.scene, self.scene.palette
        elbow = arm.elbow[index]
        sleeve, forearm = scene.thickness(SLEEVE_WIDTH), scene.thickness(FOREARM_WIDTH)
        cv2.line(out, arm.shoulder[index], elbow, palette.sleeve, sleeve, _AA, _SHIFT)
        cv2.line(out, elbow, arm.wrist[index], palette.forearm, forearm, _AA, _SHIFT)
        hand = _Hand(arm.hand[index], arm.direction[index], scene.unit * HAND_SIZE, palette)
        hand.draw(out, HandShape(arm.shape[index]), arm.thumb_side)


def _draw_distractor(out: np.ndarray, distractor: Distractor, center: np.ndarray) -> None:
    if distractor.sides == 0:
        fixed_center = (round(center[0] * _ONE), round(center[1] * _ONE))
        radius = round(distractor.radius * _ONE)
        cv2.circle(out, fixed_center, radius, distractor.color, -1, _AA, _SHIFT)
        return
    angles = 2 * np.pi * np.arange(distractor.sides) / distractor.sides
    corners = center + distractor.radius * np.column_stack([np.cos(angles), np.sin(angles)])
    cv2.fillPoly(out, [np.round(corners * _ONE).astype(np.int32)], distractor.color, _AA, _SHIFT)


class _Body:
    """Torso, neck and head in fixed-point pixels at zero sway; drawn shifted each frame."""

    def __init__(self, scene: Scene) -> None:
        self.palette = scene.palette
        self.torso = scene.fixed(TORSO)
        self.collar = scene.fixed(COLLAR)
        self.shoulders = scene.fixed([SHOULDER, _mirror(SHOULDER)])
        self.shoulder_radius = scene.fixed_length(SHOULDER_RADIUS)
        self.neck = scene.fixed(NECK)
        self.neck_width = scene.thickness(NECK_WIDTH)
        self.hair = scene.fixed(HAIR_CENTER)
        self.hair_axes = (scene.fixed_length(HAIR_AXES[0]), scene.fixed_length(HAIR_AXES[1]))
        self.face = scene.fixed(FACE_CENTER)
        self.face_axes = (scene.fixed_length(FACE_AXES[0]), scene.fixed_length(FACE_AXES[1]))
        self.ears = scene.fixed([EAR, _mirror(EAR)])
        self.ear_radius = scene.fixed_length(EAR_RADIUS)
        self.eyes = scene.fixed([EYE, _mirror(EYE)])
        self.eye_radius = scene.fixed_length(EYE_RADIUS)
        self.mouth = scene.fixed(MOUTH)
        self.mouth_width = scene.thickness(MOUTH_WIDTH)

    def draw(self, out: np.ndarray, offset: np.ndarray) -> None:
        p = self.palette

        def at(point: np.ndarray) -> Fixed:
            return int(point[0] + offset[0]), int(point[1] + offset[1])

        cv2.fillPoly(out, [self.torso + offset], p.shirt, _AA, _SHIFT)
        for shoulder in self.shoulders:
            cv2.circle(out, at(shoulder), self.shoulder_radius, p.shirt, -1, _AA, _SHIFT)
        cv2.line(out, at(self.neck[0]), at(self.neck[1]), p.skin, self.neck_width, _AA, _SHIFT)
        cv2.fillPoly(out, [self.collar + offset], p.skin, _AA, _SHIFT)
        for ear in self.ears:
            cv2.circle(out, at(ear), self.ear_radius, p.skin, -1, _AA, _SHIFT)
        cv2.ellipse(out, at(self.hair), self.hair_axes, 0, 0, 360, p.hair, -1, _AA, _SHIFT)
        cv2.ellipse(out, at(self.face), self.face_axes, 0, 0, 360, p.skin, -1, _AA, _SHIFT)
        for eye in self.eyes:
            cv2.circle(out, at(eye), self.eye_radius, p.eyes, -1, _AA, _SHIFT)
        cv2.line(out, at(self.mouth[0]), at(self.mouth[1]), p.lips, self.mouth_width, _AA, _SHIFT)


class _Hand:
    """Draws hand shapes at a pixel centre, fingers along a unit direction."""

    def __init__(
        self,
        center: np.ndarray,
        direction: np.ndarray,
        unit: float,
        palette: Palette,
    ) -> None:
        self.center, self.direction, self.unit, self.palette = center, direction, unit, palette
        self.angle = math.degrees(math.atan2(direction[1], direction[0]))
        self.finger = max(1, round(FINGER_WIDTH * unit))

    def at(self, along: float, turn: float = 0.0, across: float = 0.0) -> Fixed:
        """The point ``along`` the direction turned by ``turn`` radians, then ``across`` it."""
        c, s = math.cos(turn), math.sin(turn)
        dx, dy = self.direction
        ux, uy = c * dx - s * dy, s * dx + c * dy
        x = self.center[0] + (ux * along - uy * across) * self.unit
        y = self.center[1] + (uy * along + ux * across) * self.unit
        return round(x * _ONE), round(y * _ONE)

    def length(self, value: float) -> int:
        return round(value * self.unit * _ONE)

    def fingers(self, out: np.ndarray, turns: Sequence[float], base: float, tip: float) -> None:
        skin, width = self.palette.skin, self.finger
        for turn in turns:
            cv2.line(out, self.at(base, turn), self.at(tip, turn), skin, width, _AA, _SHIFT)

    def draw(self, out: np.ndarray, shape: HandShape, thumb_side: float) -> None:
        skin = self.palette.skin
        if shape == HandShape.RELAXED:
            axes = (self.length(0.03), self.length(0.019))
            cv2.ellipse(out, self.at(0.006), axes, self.angle, 0, 360, skin, -1, _AA, _SHIFT)
        elif shape == HandShape.OPEN:
            axes = (self.length(PALM_AXES[0]), self.length(PALM_AXES[1]))
            cv2.ellipse(out, self.at(0.0), axes, self.angle, 0, 360, skin, -1, _AA, _SHIFT)
            self.fingers(out, OPEN_FINGERS, 0.016, 0.05)
            self.fingers(out, [THUMB_TURN * thumb_side], 0.01, 0.038)
        else:
            cv2.circle(out, self.at(0.0), self.length(KNUCKLES_RADIUS), skin, -1, _AA, _SHIFT)
            if shape == HandShape.FIST:
                crease = max(1, round(0.004 * self.unit))
                ends = (self.at(0.012, across=0.015), self.at(0.012, across=-0.015))
                cv2.line(out, *ends, self.palette.skin_shade, crease, _AA, _SHIFT)
            elif shape == HandShape.POINT:
                self.fingers(out, [0.0], 0.018, 0.068)
            else:
                self.fingers(out, V_FINGERS, 0.018, 0.064)


# Entry points -------------------------------------------------------------------------------


def render_clip(
    word: str, rng: Rng, size: Size = (640, 480), fps: float = 30.0, handedness: str = "right"
) -> np.ndarray:
    """One sign between short rests: (N, H, W, 3) uint8 BGR frames; ``size`` is (width, height)."""
    return Video.clip(word, rng, size, fps, handedness).render()


def render_sentence(
    words: list[str],
    rng: Rng,
    size: Size = (640, 480),
    fps: float = 30.0,
    handedness: str = "right",
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Signs between still rests, and each sign's (start_s, end_s), leaving to regaining rest."""
    video = Video.sentence(words, rng, size, fps, handedness=handedness)
    return video.render(), video.spans_s
