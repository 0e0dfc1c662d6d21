"""What the kiosk is doing, in the words the screen shows the signer while they sign.

A hearing user of a voice kiosk gets a listening light; a Deaf signer gets this: ``idle`` (nobody
signing), ``signing`` (a sign is under way), ``reading`` (it is being classified), and the two
problems a signer can fix or report at a glance, ``too-dark`` and ``no-camera``. The inference
thread feeds it one observation per frame; it reports a state only when it changes, and keeps it
calm: a twitch shorter than ``SIGNING_AFTER_S`` never shows as signing, and darkness must last
``dark_s`` (light must return for ``LIGHT_AGAIN_S``) before the state flips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

IDLE = "idle"
SIGNING = "signing"
READING = "reading"
TOO_DARK = "too-dark"
NO_CAMERA = "no-camera"
STATES = (IDLE, SIGNING, READING, TOO_DARK, NO_CAMERA)

SIGNING_AFTER_S = 0.15  # motion this long shows as signing (a sign lasts at least min_sign_s)
LIGHT_AGAIN_S = 0.5  # light this long after darkness clears "too dark"
# ITU-R BT.601 luma weights, in OpenCV's BGR channel order.
_LUMA_BGR = np.array([0.114, 0.587, 0.299])


@dataclass(frozen=True)
class ActivityState:
    """A state and when it began: ``at`` is the wall clock (epoch seconds) while the daemon handled
    the frame that caused it, so a page on the same machine can measure how late it shows it."""

    state: str
    at: float

    def to_json(self) -> dict[str, object]:
        return {"state": self.state, "at": round(self.at, 4)}


def luma(crop: np.ndarray) -> float:
    """Mean brightness (0-255) of a BGR crop."""
    return float(np.dot(cv2.mean(crop)[:3], _LUMA_BGR))


class Activity:
    """Turns per-frame observations into state changes, handed to ``changed`` (which must not
    block: it runs on the inference thread)."""

    def __init__(
        self, dark_luma: float, dark_s: float, changed: Callable[[ActivityState], None] | None = None
    ) -> None:
        self.dark_luma = dark_luma
        self.dark_s = dark_s
        self.changed = changed
        self.current = ActivityState(IDLE, time.time())
        self._dark_since: float | None = None
        self._light_since: float | None = None
        self._dark = False

    def observe(
        self, timestamp_s: float, sign_started_s: float | None, reading: bool, brightness: float
    ) -> None:
        """One frame: stream time, when the sign in progress began (None: no sign), whether it is
        being read (classified, or its speculative result awaits the rest), the crop's brightness."""
        self._update_dark(timestamp_s, brightness)
        if self._dark:
            self._set(TOO_DARK)
        elif reading:
            self._set(READING)
        elif sign_started_s is not None and timestamp_s - sign_started_s >= SIGNING_AFTER_S:
            self._set(SIGNING)
        elif sign_started_s is None or self.current.state not in (SIGNING, READING):
            self._set(IDLE)

    def reading(self) -> None:
        """A closed sign is being classified now (before the inference starts)."""
        if self.current.state != TOO_DARK:
            self._set(READING)

    def camera_lost(self) -> None:
        """No frame comes: capture reports an error and the camera has been silent a while."""
        self._dark_since = self._light_since = None
        self._dark = False
        self._set(NO_CAMERA)

    def _update_dark(self, timestamp_s: float, brightness: float) -> None:
        if brightness < self.dark_luma:
            self._light_since = None
            if self._dark_since is None:
                self._dark_since = timestamp_s
            if timestamp_s - self._dark_since >= self.dark_s:
                self._dark = True
        else:
            self._dark_since = None
            if self._light_since is None:
                self._light_since = timestamp_s
            if self._dark and timestamp_s - self._light_since >= LIGHT_AGAIN_S:
                self._dark = False

    def _set(self, state: str) -> None:
        if state == self.current.state:
            return
        self.current = ActivityState(state, time.time())
        if self.changed is not None:
            self.changed(self.current)
