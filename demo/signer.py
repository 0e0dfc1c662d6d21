"""A drawn signer performing 12 made-up gestures, so that videos come with known answers.

PLACEHOLDER NAMES: the gestures are named after WLASL glosses only so that class indices line up
with a WLASL-style label list. They are NOT real ASL signs, do not resemble how these words are
signed, and must never be used to learn, teach or judge American Sign Language. They exist so the
project can train, calibrate and test end to end without shipping sign-language recordings.

Each gesture differs from the others in where the hands go (chest, chin, cheek, beside the head,
above the head, waist, out to the side), in the path (line, arc, circle, taps, waves) and in the
hand shape (open palm, fist, pointing finger, two fingers), one- or two-handed.

Geometry: the figure is laid out in body units, where 1.0 is the side of the frame's central
square (side ``min(width, height)``) and (0, 0) is the frame centre, y down. Preprocessing resizes
the short side to 256 and centre-crops 224, i.e. keeps the central 7/8 of that square; the whole
figure, hands at their extremes included, stays inside the central 85 % of it for every frame size
and aspect ratio. The signer's right hand leads; it appears on the left of the image.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

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

SAFE_HALF = 0.425
"""Half side, in body units, of the central 85 % of the central square that holds the figure."""
SIGN_SECONDS = (0.8, 2.5)
CLIP_REST_SECONDS = (0.2, 0.5)
SENTENCE_REST_SECONDS = (0.6, 1.5)

Color = tuple[float, float, float]
Points = np.ndarray


class HandShape(IntEnum):
    RELAXED = 0
    OPEN = 1
    FIST = 2
    POINT = 3
    V = 4


# Body layout for the right side (image left), in body units; the left side mirrors it.
SHOULDER = np.array([-0.12, -0.06])
REST_HAND = np.array([-0.17, 0.27])
UPPER_ARM = 0.18
FOREARM = 0.18
ARM_WIDTH = 0.05
FOREARM_WIDTH = 0.04
HAND_SIZE = 1.15
"""Scales every hand shape below; the shapes are drawn in body units times this."""
HAND_REACH = 0.074 * HAND_SIZE
"""Palm centre to the farthest fingertip edge of any hand shape."""
ELBOW_POLE = np.array([-0.4, 1.0, -0.6])
"""Where elbows prefer to point (down, outward, backward), for the right arm."""
SIGNING_DEPTH = 0.09
"""How far in front of the shoulders the hands are while signing; bends the arms naturally."""
BODY_SWAY = 0.0015
HAND_JITTER = 0.003
HEAD_TOP = -0.283
TORSO_BOTTOM = 0.33
TORSO_RIGHT_HALF = np.array(
    [[-0.035, -0.1], [-0.1, -0.09], [-0.14, -0.065], [-0.15, -0.02], [-0.135, 0.1], [-0.125, 0.33]]
)

_SHIFT = 4
"""Fractional bits of the fixed-point coordinates given to OpenCV, for sub-pixel motion."""
_ONE = 1 << _SHIFT


def _mirror(points: Points) -> Points:
    return points * np.array([-1.0, 1.0])


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


# Gesture paths: motion progress u in [0, 1] -> (right hand, left hand or None to keep it at rest).
PathPair = tuple[Points, Points | None]


def _book(u: np.ndarray) -> PathPair:
    """Palms together at the chest open apart twice, like covers."""
    spread = 0.12 * (1 - np.cos(3 * np.pi * u)) / 2
    right = _points(-0.03 - spread, 0.03 - 0.03 * np.sin(3 * np.pi * u) ** 2)
    return right, _mirror(right)


def _drink(u: np.ndarray) -> PathPair:
    """A fist rises from the chest to the mouth, then tips towards it."""
    rise = _smoothstep(np.clip(u / 0.55, 0, 1))
    tip = np.sin(np.pi * np.clip((u - 0.55) / 0.45, 0, 1))
    return _points(-0.05 + 0.03 * rise + 0.025 * tip, 0.05 - 0.2 * rise - 0.015 * tip), None


def _computer(u: np.ndarray) -> PathPair:
    """A pointing finger draws one and a half big circles in front of the chest."""
    return _circle(u, (-0.06, 0.0), 0.075, 1.5), None


def _before(u: np.ndarray) -> PathPair:
    """An open palm sweeps in one line from the belly up past the right side of the head."""
    return _line(u, (0.0, 0.13), (-0.21, -0.2)), None


def _chair(u: np.ndarray) -> PathPair:
    """Two fingers tap twice on a fist held still at the chest."""
    right = _points(0.02, -0.005 + 0.045 * np.sin(2 * np.pi * u) ** 2)
    return right, _points(np.full_like(u, 0.06), 0.075)


def _go(u: np.ndarray) -> PathPair:
    """Both index fingers travel side by side in an arc out to the left and up."""
    right = _line(u, (-0.1, 0.06), (0.1, -0.06)) - _points(0.0, 0.05 * np.sin(np.pi * u))
    return right, right + np.array([0.2, 0.0])


def _clothes(u: np.ndarray) -> PathPair:
    """Both open palms brush down the chest twice."""
    right = _points(-0.085, -0.02 + 0.15 * np.sin(2 * np.pi * u) ** 2)
    return right, _mirror(right)


def _who(u: np.ndarray) -> PathPair:
    """A pointing finger circles twice, small, at the chin."""
    return _circle(u, (-0.015, -0.12), 0.025, 2.0), None


def _candy(u: np.ndarray) -> PathPair:
    """A pointing finger strokes twice from the cheek diagonally down and out."""
    return _line(np.sin(2 * np.pi * u) ** 2, (-0.06, -0.18), (-0.15, -0.05)), None


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


GESTURES: dict[str, Gesture] = dict(
    zip(
        GLOSSES,
        (
            Gesture(HandShape.OPEN, HandShape.OPEN, _book, 1.6),
            Gesture(HandShape.FIST, HandShape.RELAXED, _drink, 1.5),
            Gesture(HandShape.POINT, HandShape.RELAXED, _computer, 1.7),
            Gesture(HandShape.OPEN, HandShape.RELAXED, _before, 1.2),
            Gesture(HandShape.V, HandShape.FIST, _chair, 1.5),
            Gesture(HandShape.POINT, HandShape.POINT, _go, 1.3),
            Gesture(HandShape.OPEN, HandShape.OPEN, _clothes, 1.6),
            Gesture(HandShape.POINT, HandShape.RELAXED, _who, 1.6),
            Gesture(HandShape.POINT, HandShape.RELAXED, _candy, 1.6),
            Gesture(HandShape.OPEN, HandShape.RELAXED, _cousin, 1.6),
            Gesture(HandShape.OPEN, HandShape.OPEN, _deaf, 1.8),
            Gesture(HandShape.OPEN, HandShape.RELAXED, _fine, 1.3),
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


@dataclass(frozen=True)
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
    """Blend from rest (away = 0) to the gesture path (away = 1)."""
    if path is None:
        return np.tile(rest, (len(away), 1))
    return rest + (path - rest) * away[:, None]


def _hand_shapes(shape: HandShape, away: np.ndarray) -> np.ndarray:
    return np.where(away >= 0.5, shape, HandShape.RELAXED).astype(np.int8)


def plan_sign(word: str, rng: np.random.Generator, fps: float) -> Poses:
    """One sign from leaving rest to being back at rest; every frame is off the rest pose."""
    gesture = gesture_for(word)
    seconds = float(np.clip(gesture.seconds / rng.uniform(0.7, 1.45), *SIGN_SECONDS))
    frames = max(2, round(seconds * fps))
    enter, leave = rng.uniform(0.17, 0.27, size=2)
    t = np.arange(1, frames + 1) / (frames + 1)
    progress = _smoothstep(np.clip((t - enter) / (1 - enter - leave), 0, 1))
    away = np.minimum(_smoothstep(np.clip(t / enter, 0, 1)), _smoothstep(np.clip((1 - t) / leave, 0, 1)))
    right_path, left_path = gesture.path(progress)
    return Poses(
        _hand_track(right_path, away, REST_HAND),
        _hand_track(left_path, away, _mirror(REST_HAND)),
        _hand_shapes(gesture.right_shape, away),
        _hand_shapes(gesture.left_shape if left_path is not None else HandShape.RELAXED, away),
    )


def _rest_frames(rng: np.random.Generator, fps: float, seconds: tuple[float, float]) -> int:
    return max(1, round(rng.uniform(*seconds) * fps))


def plan_signs(
    words: Sequence[str], rng: np.random.Generator, fps: float, rest_seconds: tuple[float, float]
) -> tuple[Poses, list[tuple[float, float]]]:
    """Rest, then each sign followed by rest; returns the poses and each sign's span in seconds."""
    parts = [Poses.rest(_rest_frames(rng, fps, rest_seconds))]
    spans = []
    start = len(parts[0])
    for word in words:
        sign = plan_sign(word, rng, fps)
        spans.append((start / fps, (start + len(sign)) / fps))
        parts += [sign, Poses.rest(_rest_frames(rng, fps, rest_seconds))]
        start += len(sign) + len(parts[-1])
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
    mirror3 = np.array([-1.0, 1.0, 1.0])
    rest = _mirror(REST_HAND)
    return _elbows(_mirror(SHOULDER), hands, _hand_depth(hands, rest), ELBOW_POLE * mirror3)


def _figure_box() -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of everything the figure can draw, over every gesture."""
    u = np.linspace(0, 1, 241)
    points = [np.array([[0.0, HEAD_TOP], [0.0, TORSO_BOTTOM]]), TORSO_RIGHT_HALF]
    for word in GLOSSES:
        sign = plan_sign(word, np.random.default_rng(0), 60.0)
        right_path, left_path = gesture_for(word).path(u)
        for hands, side in ((sign.right, 1.0), (right_path, 1.0), (sign.left, -1.0), (left_path, -1.0)):
            if hands is None:
                continue
            elbows = right_elbows(hands) if side > 0 else left_elbows(hands)
            points += [hands - HAND_REACH, hands + HAND_REACH, elbows - ARM_WIDTH, elbows + ARM_WIDTH]
    stacked = np.concatenate(points)
    margin = 2 * (BODY_SWAY + HAND_JITTER)
    x0, y0 = stacked.min(axis=0) - margin
    x1, y1 = stacked.max(axis=0) + margin
    return float(min(x0, -x1)), float(y0), float(max(x1, -x0)), float(y1)


FIGURE_BOX = _figure_box()
"""Extent of the figure at scale 1 (x0, y0, x1, y1), symmetric in x because signers vary."""


# Scene --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lighting:
    contrast: float
    brightness: float
    gains: tuple[float, float, float]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Lighting:
        gains = tuple(float(g) for g in rng.uniform(0.92, 1.08, size=3))
        return cls(rng.uniform(0.8, 1.15), rng.uniform(-30, 30), gains)  # type: ignore[arg-type]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Contrast about mid-grey, brightness, colour cast; works on colours and images."""
        lit = ((image - 128.0) * self.contrast + 128.0 + self.brightness) * np.array(self.gains)
        return np.clip(lit, 0, 255)

    def color(self, bgr: Color) -> Color:
        lit = self.apply(np.array(bgr, float))
        return (float(lit[0]), float(lit[1]), float(lit[2]))


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


def _random_hsv(
    rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]
) -> Color:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value))
    return (255 * b, 255 * g, 255 * r)


def _pick(rng: np.random.Generator, tones: Sequence[Color], spread: float) -> Color:
    base = np.array(tones[rng.integers(len(tones))], float) + rng.uniform(-spread, spread, 3)
    clipped = np.clip(base, 0, 255)
    return (float(clipped[0]), float(clipped[1]), float(clipped[2]))


def _shaded(color: Color, factor: float) -> Color:
    return (color[0] * factor, color[1] * factor, color[2] * factor)


def _distance(a: Color, b: Color) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def _distinct(
    rng: np.random.Generator, draw: Callable[[], Color], avoid: Sequence[Color], gap: float
) -> Color:
    """Draws colours until one is at least ``gap`` from all of ``avoid`` (or gives up after 50)."""
    color = draw()
    for _ in range(50):
        if all(_distance(color, other) >= gap for other in avoid):
            break
        color = draw()
    return color


def _sample_palette(rng: np.random.Generator, lighting: Lighting) -> tuple[Palette, Color]:
    """Figure colours and a background base colour that stays apart from skin and shirt."""
    skin = _pick(rng, SKIN_TONES, 10)
    hair = _pick(rng, HAIR_TONES, 12)
    shirt = _distinct(rng, lambda: _random_hsv(rng, (0.2, 0.9), (0.2, 0.9)), [skin], 80)
    backdrop = _distinct(rng, lambda: _random_hsv(rng, (0.0, 0.6), (0.15, 0.95)), [skin, shirt], 70)
    sleeve = _shaded(shirt, 0.8)
    forearm = sleeve if rng.uniform() < 0.6 else skin
    shade = _shaded(skin, 0.72)
    lips = (skin[0] * 0.6, skin[1] * 0.6, skin[2] * 0.85)
    colors = (skin, shade, hair, shirt, sleeve, forearm, (35.0, 30.0, 30.0), lips)
    palette = Palette(*(lighting.color(c) for c in colors))
    return palette, backdrop


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int, channels: int) -> np.ndarray:
    width, height = size
    grid = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    noise = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return noise.reshape(height, width, channels)


def _background(
    rng: np.random.Generator, size: tuple[int, int], base: Color, lighting: Lighting
) -> np.ndarray:
    """A wall: base colour, a gradient, soft blotches, fine texture and a few faint panels."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)
    image = np.empty((height, width, 3), np.float32)
    image[...] = np.array(base, np.float32)
    image += (ramp * rng.uniform(0, 60))[..., None]
    image += _smooth_noise(rng, size, 6, 3) * rng.uniform(2, 12)
    image += _smooth_noise(rng, size, max(8, min(width, height) // 6), 1) * rng.uniform(0, 6)
    for _ in range(rng.integers(0, 4)):
        x0, x1 = sorted(rng.uniform(0, width, 2))
        y0, y1 = sorted(rng.uniform(0, height, 2))
        image[int(y0) : int(y1), int(x0) : int(x1)] += rng.uniform(-25, 25)
    return lighting.apply(image).astype(np.uint8)


@dataclass(frozen=True)
class Distractor:
    """A small shape drifting slowly across the background, bouncing off the frame edges."""

    start: tuple[float, float]
    velocity: tuple[float, float]
    radius: float
    sides: int
    color: Color

    @classmethod
    def sample(cls, rng: np.random.Generator, size: tuple[int, int], lighting: Lighting) -> Distractor:
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

    def centers(self, frames: int, fps: float, size: tuple[int, int]) -> np.ndarray:
        t = np.arange(frames)[:, None] / fps
        travelled = np.array(self.start) + np.array(self.velocity) * t
        span = np.array(size, float)
        return span - np.abs(np.mod(travelled, 2 * span) - span)


@dataclass(frozen=True)
class Scene:
    """Everything about a video that does not change over time: look, camera and placement."""

    size: tuple[int, int]
    background: np.ndarray
    palette: Palette
    origin: tuple[float, float]
    """Pixel position of the body origin."""
    unit: float
    """Pixels per body unit."""
    distractor: Distractor | None
    blur_sigma: float
    grain: np.ndarray | None
    """Camera noise tile of values 0..k, larger than the frame; added and subtracted at offsets."""

    @classmethod
    def sample(cls, rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Scene:
        width, height = size
        if width < 8 or height < 8:
            raise ValueError(f"frame size must be at least 8x8, got {width}x{height}")
        lighting = Lighting.sample(rng)
        palette, backdrop = _sample_palette(rng, lighting)
        origin, unit = _placement(rng, size)
        grain_level = int(rng.integers(2, 9))
        grain = rng.integers(0, grain_level + 1, (height + _GRAIN_PAD, width + _GRAIN_PAD, 3), np.uint8)
        return cls(
            size=(width, height),
            background=_background(rng, size, backdrop, lighting),
            palette=palette,
            origin=origin,
            unit=unit,
            distractor=Distractor.sample(rng, size, lighting),
            blur_sigma=float(rng.uniform(0.3, 1.0)) if rng.uniform() < 0.75 else 0.0,
            grain=grain,
        )


_GRAIN_PAD = 16


def _placement(rng: np.random.Generator, size: tuple[int, int]) -> tuple[tuple[float, float], float]:
    """Scale and shift the figure at random while keeping FIGURE_BOX inside the safe square."""
    width, height = size
    side = min(width, height)
    x0, y0, x1, y1 = FIGURE_BOX
    fit = min(2 * SAFE_HALF / (x1 - x0), 2 * SAFE_HALF / (y1 - y0))
    scale = fit * rng.uniform(0.82, 1.0)
    shift_x = rng.uniform(-SAFE_HALF - x0 * scale, SAFE_HALF - x1 * scale)
    shift_y = rng.uniform(-SAFE_HALF - y0 * scale, SAFE_HALF - y1 * scale)
    return (width / 2 + shift_x * side, height / 2 + shift_y * side), scale * side


# Painting -----------------------------------------------------------------------------------


def _wobble(
    rng: np.random.Generator, frames: int, fps: float, amplitude: float, hz: tuple[float, float]
) -> Points:
    """Smooth random motion: three sinusoids per axis."""
    t = np.arange(frames)[:, None, None] / fps
    freq = rng.uniform(*hz, size=(3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
    return amplitude / math.sqrt(3) * np.sin(2 * np.pi * freq * t + phase).sum(axis=1)


def _jittered(rng: np.random.Generator, hands: Points, rest: np.ndarray, fps: float) -> Points:
    """Hands tremble a little while signing and are perfectly still at rest."""
    activity = np.clip(np.linalg.norm(hands - rest, axis=1) / 0.05, 0, 1)[:, None]
    return hands + _wobble(rng, len(hands), fps, HAND_JITTER, (1.0, 4.0)) * activity


def _unit_vectors(vectors: Points) -> Points:
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(length > 1e-6, vectors / np.maximum(length, 1e-6), np.array([0.0, -1.0]))


@dataclass(frozen=True)
class _Arm:
    """Per-frame fixed-point pixel positions of one arm and its hand direction."""

    shoulder: list[tuple[int, int]]
    elbow: list[tuple[int, int]]
    wrist: list[tuple[int, int]]
    hand_px: np.ndarray
    direction: np.ndarray
    shape: np.ndarray
    thumb_side: float


class Video:
    """A planned take: all randomness is drawn up front, frames are painted on demand."""

    def __init__(
        self,
        scene: Scene,
        poses: Poses,
        spans_s: Sequence[tuple[float, float]],
        fps: float,
        rng: np.random.Generator,
    ) -> None:
        self.scene = scene
        self.poses = poses
        self.spans_s = list(spans_s)
        self.fps = fps
        frames = len(poses)
        sway = _wobble(rng, frames, fps, BODY_SWAY, (0.15, 0.6))
        self._body_offset = np.round(sway * scene.unit * _ONE).astype(np.int32)
        right = _jittered(rng, poses.right, REST_HAND, fps)
        left = _jittered(rng, poses.left, _mirror(REST_HAND), fps)
        self._right = self._arm(SHOULDER, right, right_elbows(right), sway, poses.right_shape, 1.0)
        self._left = self._arm(_mirror(SHOULDER), left, left_elbows(left), sway, poses.left_shape, -1.0)
        distractor = scene.distractor
        self._distractor = None if distractor is None else distractor.centers(frames, fps, scene.size)
        self._grain_offsets = rng.integers(0, _GRAIN_PAD + 1, (frames, 4)).tolist()
        self._template = _BodyTemplate(scene)

    @classmethod
    def clip(
        cls, word: str, rng: np.random.Generator, size: tuple[int, int] = (640, 480), fps: float = 30.0
    ) -> Video:
        return cls.sentence([word], rng, size, fps, CLIP_REST_SECONDS)

    @classmethod
    def sentence(
        cls,
        words: Sequence[str],
        rng: np.random.Generator,
        size: tuple[int, int] = (640, 480),
        fps: float = 30.0,
        rest_seconds: tuple[float, float] = SENTENCE_REST_SECONDS,
    ) -> Video:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        for word in words:
            gesture_for(word)
        scene = Scene.sample(rng, size)
        poses, spans = plan_signs(words, rng, fps, rest_seconds)
        return cls(scene, poses, spans, fps, rng)

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

    def _fixed(self, points: Points) -> np.ndarray:
        origin = np.array(self.scene.origin)
        return np.round((origin + points * self.scene.unit) * _ONE).astype(np.int32)

    def _arm(
        self,
        shoulder: np.ndarray,
        hands: Points,
        elbows: Points,
        sway: Points,
        shapes: np.ndarray,
        thumb_side: float,
    ) -> _Arm:
        direction = _unit_vectors(hands - elbows)
        wrist = hands - 0.02 * direction
        return _Arm(
            shoulder=[tuple(p) for p in self._fixed(shoulder + sway).tolist()],
            elbow=[tuple(p) for p in self._fixed(elbows + sway).tolist()],
            wrist=[tuple(p) for p in self._fixed(wrist + sway).tolist()],
            hand_px=np.array(self.scene.origin) + (hands + sway) * self.scene.unit,
            direction=direction,
            shape=shapes,
            thumb_side=thumb_side,
        )

    def paint(self, index: int, out: np.ndarray) -> None:
        """Draws frame ``index`` into ``out``, a contiguous (H, W, 3) uint8 array."""
        scene = self.scene
        np.copyto(out, scene.background)
        if scene.distractor is not None and self._distractor is not None:
            _draw_distractor(out, scene.distractor, self._distractor[index])
        self._template.draw(out, self._body_offset[index])
        for arm in (self._left, self._right):
            self._draw_arm(out, arm, index)
        if scene.blur_sigma > 0:
            cv2.GaussianBlur(out, (3, 3), scene.blur_sigma, dst=out)
        if scene.grain is not None:
            width, height = scene.size
            ay, ax, sy, sx = self._grain_offsets[index]
            cv2.add(out, scene.grain[ay : ay + height, ax : ax + width], dst=out)
            cv2.subtract(out, scene.grain[sy : sy + height, sx : sx + width], dst=out)

    def _draw_arm(self, out: np.ndarray, arm: _Arm, index: int) -> None:
        palette, unit = self.scene.palette, self.scene.unit
        shoulder, elbow, wrist = arm.shoulder[index], arm.elbow[index], arm.wrist[index]
        cv2.line(out, shoulder, elbow, palette.sleeve, _thickness(ARM_WIDTH, unit), cv2.LINE_AA, _SHIFT)
        cv2.line(out, elbow, wrist, palette.forearm, _thickness(FOREARM_WIDTH, unit), cv2.LINE_AA, _SHIFT)
        _draw_hand(
            out,
            arm.hand_px[index],
            arm.direction[index],
            HandShape(int(arm.shape[index])),
            unit,
            palette,
            arm.thumb_side,
        )


def _thickness(width: float, unit: float) -> int:
    return max(1, round(width * unit))


def _fixed_point(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0]) * _ONE), round(float(point[1]) * _ONE)


def _draw_distractor(out: np.ndarray, distractor: Distractor, center: np.ndarray) -> None:
    if distractor.sides == 0:
        radius = round(distractor.radius * _ONE)
        cv2.circle(out, _fixed_point(center), radius, distractor.color, -1, cv2.LINE_AA, _SHIFT)
        return
    angles = 2 * np.pi * np.arange(distractor.sides) / distractor.sides
    corners = center + distractor.radius * np.column_stack([np.cos(angles), np.sin(angles)])
    polygon = np.round(corners * _ONE).astype(np.int32)
    cv2.fillPoly(out, [polygon], distractor.color, cv2.LINE_AA, _SHIFT)


class _BodyTemplate:
    """Torso, neck and head in fixed-point pixels at zero sway; drawn shifted each frame."""

    def __init__(self, scene: Scene) -> None:
        self.palette = scene.palette
        self.unit = scene.unit
        origin = np.array(scene.origin)

        def fixed(points: Points) -> np.ndarray:
            return np.round((origin + np.asarray(points) * scene.unit) * _ONE).astype(np.int32)

        def length(value: float) -> int:
            return round(value * scene.unit * _ONE)

        self.torso = fixed(np.concatenate([TORSO_RIGHT_HALF, _mirror(TORSO_RIGHT_HALF)[::-1]]))
        self.collar = fixed([[-0.03, -0.1], [0.03, -0.1], [0.0, -0.06]])
        self.shoulders = fixed([SHOULDER, _mirror(SHOULDER)])
        self.shoulder_radius = length(0.035)
        self.neck = fixed([[0.0, -0.14], [0.0, -0.09]])
        self.neck_width = _thickness(0.05, scene.unit)
        self.hair = fixed([0.0, -0.215])
        self.hair_axes = (length(0.064), length(0.068))
        self.ears = fixed([[-0.057, -0.195], [0.057, -0.195]])
        self.ear_radius = length(0.012)
        self.face = fixed([0.0, -0.195])
        self.face_axes = (length(0.055), length(0.07))
        self.eyes = fixed([[-0.021, -0.205], [0.021, -0.205]])
        self.eye_radius = length(0.0065)
        self.mouth = fixed([[-0.016, -0.155], [0.016, -0.155]])
        self.mouth_width = _thickness(0.005, scene.unit)

    def draw(self, out: np.ndarray, offset: np.ndarray) -> None:
        p, aa, s = self.palette, cv2.LINE_AA, _SHIFT

        def at(point: np.ndarray) -> tuple[int, int]:
            return int(point[0] + offset[0]), int(point[1] + offset[1])

        cv2.fillPoly(out, [self.torso + offset], p.shirt, aa, s)
        for shoulder in self.shoulders:
            cv2.circle(out, at(shoulder), self.shoulder_radius, p.shirt, -1, aa, s)
        cv2.line(out, at(self.neck[0]), at(self.neck[1]), p.skin, self.neck_width, aa, s)
        cv2.fillPoly(out, [self.collar + offset], p.skin, aa, s)
        for ear in self.ears:
            cv2.circle(out, at(ear), self.ear_radius, p.skin, -1, aa, s)
        cv2.ellipse(out, at(self.hair), self.hair_axes, 0, 0, 360, p.hair, -1, aa, s)
        cv2.ellipse(out, at(self.face), self.face_axes, 0, 0, 360, p.skin, -1, aa, s)
        for eye in self.eyes:
            cv2.circle(out, at(eye), self.eye_radius, p.eyes, -1, aa, s)
        cv2.line(out, at(self.mouth[0]), at(self.mouth[1]), p.lips, self.mouth_width, aa, s)


# Hand shapes, in body units from the palm centre along the hand's direction.
PALM_AXES = (0.025, 0.021)
FINGER_WIDTH = 0.011
OPEN_FINGERS = (-0.45, -0.15, 0.15, 0.45)
V_FINGERS = (-0.28, 0.28)


def _rotate(direction: np.ndarray, radians: float) -> np.ndarray:
    c, s = math.cos(radians), math.sin(radians)
    return np.array([c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]])


def _draw_hand(
    out: np.ndarray,
    center: np.ndarray,
    direction: np.ndarray,
    shape: HandShape,
    unit: float,
    palette: Palette,
    thumb_side: float,
) -> None:
    """Draws a hand shape at ``center`` (pixels), fingers along ``direction`` (unit vector)."""
    aa, s = cv2.LINE_AA, _SHIFT
    unit *= HAND_SIZE
    finger = _thickness(FINGER_WIDTH, unit)

    def fixed(offset: float, turn: float = 0.0) -> tuple[int, int]:
        return _fixed_point(center + _rotate(direction, turn) * offset * unit)

    def length(value: float) -> int:
        return round(value * unit * _ONE)

    if shape == HandShape.RELAXED:
        angle = math.degrees(math.atan2(direction[1], direction[0]))
        cv2.ellipse(out, fixed(0.006), (length(0.03), length(0.019)), angle, 0, 360, palette.skin, -1, aa, s)
        return
    if shape == HandShape.OPEN:
        angle = math.degrees(math.atan2(direction[1], direction[0]))
        axes = (length(PALM_AXES[0]), length(PALM_AXES[1]))
        cv2.ellipse(out, fixed(0.0), axes, angle, 0, 360, palette.skin, -1, aa, s)
        for turn in OPEN_FINGERS:
            cv2.line(out, fixed(0.016, turn), fixed(0.05, turn), palette.skin, finger, aa, s)
        thumb = 1.2 * thumb_side
        cv2.line(out, fixed(0.01, thumb), fixed(0.038, thumb), palette.skin, finger, aa, s)
        return
    cv2.circle(out, fixed(0.0), length(0.025), palette.skin, -1, aa, s)
    if shape == HandShape.FIST:
        crease = _thickness(0.004, unit)
        left = _fixed_point(center + (direction * 0.012 + _rotate(direction, math.pi / 2) * 0.015) * unit)
        right = _fixed_point(center + (direction * 0.012 - _rotate(direction, math.pi / 2) * 0.015) * unit)
        cv2.line(out, left, right, palette.skin_shade, crease, aa, s)
    elif shape == HandShape.POINT:
        cv2.line(out, fixed(0.018), fixed(0.068), palette.skin, finger, aa, s)
    elif shape == HandShape.V:
        for turn in V_FINGERS:
            cv2.line(out, fixed(0.018, turn), fixed(0.064, turn), palette.skin, finger, aa, s)


# Public entry points ------------------------------------------------------------------------


def render_clip(
    word: str, rng: np.random.Generator, size: tuple[int, int] = (640, 480), fps: float = 30.0
) -> np.ndarray:
    """One sign between short rests, as (N, H, W, 3) uint8 BGR frames; ``size`` is (width, height)."""
    return Video.clip(word, rng, size, fps).render()


def render_sentence(
    words: list[str],
    rng: np.random.Generator,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Signs separated by still rests, and each sign's (start_s, end_s) from leaving to regaining rest."""
    video = Video.sentence(words, rng, size, fps)
    return video.render(), video.spans_s
