"""Which kiosks take a channel's candidate: the canary cohort of a staged rollout.

A kiosk's position is a stable hash of the channel and its device id mapped to [0, 1): the first
8 bytes of ``sha256("<channel>\\n<device id>")`` over 2**64. It is in the canary while its position
is below the candidate's ``fraction``, so the kiosks of a 10 % canary stay in it at 50 %, and two
channels draw different canaries from the same fleet. ``[update] cohort`` overrides the draw on
one kiosk (``canary``: always; ``stable``: never).
"""

from __future__ import annotations

import hashlib

from edge.runtime.releases import Candidate

CANARY, STABLE = "canary", "stable"


def cohort_position(channel_url: str, device_id: str) -> float:
    """The kiosk's place in [0, 1) for this channel; the same on every run and every machine."""
    digest = hashlib.sha256(f"{channel_url.rstrip('/')}\n{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def cohort_of(override: str, position: float, candidate: Candidate | None) -> str:
    """``canary`` when this kiosk takes ``candidate`` (the override, else its position below the
    fraction), else ``stable``; with no candidate only an override says ``canary``."""
    if override:
        return override
    return CANARY if candidate is not None and position < candidate.fraction else STABLE
