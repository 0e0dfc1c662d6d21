"""Every move of a channel's signed pointer (``current.json``), on the publisher's side: make a
release the stable one, start a staged rollout of a candidate, apply a rollout decision
(``asl-edge rollout step``).

Each move reads the pointer, writes the next one with the next sequence number (kiosks refuse an
older one) and signs it with the publisher's key. The rollout's recent decisions travel with it
(``history``, at most ``HISTORY_LIMIT``): a move that ends a candidate records how it ended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from edge.core.utc import utc_iso
from edge.runtime.channel import Channel
from edge.runtime.releases import (
    HISTORY_LIMIT,
    POINTER_FILE,
    RELEASE_FILE,
    Candidate,
    ChannelPointer,
    ReleaseError,
    ReleaseRefused,
    RolloutEntry,
    claimed_version,
    key_id,
    release_key,
    sign_document,
)

PROMOTE, EXPAND, ROLLBACK, HOLD, START = "promote", "expand", "rollback", "hold", "start"


@dataclass(frozen=True)
class CurrentPointer:
    """What the channel points to now: its sequence, and the pointer itself when this publisher's
    key signed it (None when there is none, or another key signed it: a key rotation)."""

    sequence: int
    pointer: ChannelPointer | None


def read_current(channel: Channel, private_key: Any) -> CurrentPointer:
    data = channel.read_document(POINTER_FILE)
    if data is None:
        return CurrentPointer(0, None)
    sequence = ChannelPointer.sequence_of(data)
    public = private_key.public_key()
    try:
        return CurrentPointer(sequence, ChannelPointer.verify(data, {key_id(public): public}))
    except ReleaseRefused:
        return CurrentPointer(sequence, None)


def release_sha256(channel: Channel, version: str) -> str:
    """The sha256 of a release's ``release.json`` in the channel (what a pointer names)."""
    manifest = channel.read_document(release_key(version, RELEASE_FILE))
    if manifest is None:
        raise ReleaseError(f"{channel.location.url(release_key(version))} has no {RELEASE_FILE}")
    if claimed_version(manifest) != version:
        raise ReleaseError(
            f"{channel.location.url(release_key(version, RELEASE_FILE))} is not release {version}"
        )
    return hashlib.sha256(manifest).hexdigest()


def _write(channel: Channel, pointer: ChannelPointer, private_key: Any) -> ChannelPointer:
    pointer = replace(pointer, history=pointer.history[-HISTORY_LIMIT:])
    channel.put(POINTER_FILE, sign_document(pointer.document(), private_key), "application/json", once=False)
    return pointer


def _entry(
    decision: str, version: str, why: str, sequence: int, thresholds: dict[str, Any] | None = None
) -> RolloutEntry:
    return RolloutEntry(decision, version, why, dict(thresholds or {}), utc_iso(), sequence)


def point_to(channel: Channel, version: str, private_key: Any, how: str) -> ChannelPointer:
    """Make ``version`` the stable release for every kiosk; a candidate in progress ends (promoted
    when it is ``version``, else rolled back), and ``how`` says why in its history."""
    digest = release_sha256(channel, version)
    current = read_current(channel, private_key)
    sequence = current.sequence + 1
    history: tuple[RolloutEntry, ...] = ()
    if current.pointer is not None:
        history = current.pointer.history
        candidate = current.pointer.candidate
        if candidate is not None:
            decision = PROMOTE if candidate.version == version else ROLLBACK
            history += (_entry(decision, candidate.version, how, sequence),)
    pointer = ChannelPointer(version, digest, sequence, utc_iso(), history=history)
    return _write(channel, pointer, private_key)


def rollout_base(channel: Channel, version: str, private_key: Any) -> ChannelPointer:
    """The pointer a rollout of ``version`` would start from; ReleaseError saying why none can
    (checked before a candidate is uploaded, and again as it starts)."""
    current = read_current(channel, private_key).pointer
    if current is None:
        raise ReleaseError(
            f"{channel.location.url()} has no stable release signed by this key to compare a candidate "
            "with; publish one first (without --candidate)"
        )
    if current.candidate is not None:
        raise ReleaseError(
            f"release {current.candidate.version} is rolling out in {channel.location.url()} (step "
            f"{current.candidate.step}, {current.candidate.fraction:g} of the kiosks); let "
            "'asl-edge rollout step' promote or roll it back, or end it with 'asl-edge publish --promote'"
        )
    if version == current.version:
        raise ReleaseError(f"release {version} is the stable release of {channel.location.url()} already")
    return current


def start_candidate(
    channel: Channel, version: str, private_key: Any, fraction: float, shadow: bool
) -> ChannelPointer:
    """Start a staged rollout: ``version`` goes to the kiosks below ``fraction`` (served, or with
    ``shadow`` run beside the stable release); the stable release stays for everyone else."""
    digest = release_sha256(channel, version)
    current = rollout_base(channel, version, private_key)
    now = utc_iso()
    sequence = current.sequence + 1
    candidate = Candidate(version, digest, round(fraction, 6), shadow, now, 1, now)
    how = f"publish --candidate --fraction {fraction:g}" + (" --shadow" if shadow else "")
    pointer = replace(
        current,
        sequence=sequence,
        candidate=candidate,
        history=(*current.history, _entry(START, version, how, sequence)),
    )
    return _write(channel, pointer, private_key)


def apply_decision(
    channel: Channel,
    private_key: Any,
    seen: ChannelPointer,
    decision: str,
    why: str,
    thresholds: dict[str, Any],
    fraction: float | None = None,
) -> ChannelPointer:
    """Re-sign the pointer that was analysed (``seen``) with a rollout decision: ``promote`` (the
    candidate becomes stable for everyone), ``expand`` (to ``fraction``: the next step) or
    ``rollback`` (the candidate leaves; its kiosks return to stable). Refused when the pointer moved
    since it was read (another publisher, another step)."""
    candidate = seen.candidate
    if candidate is None:
        raise ReleaseError(f"{channel.location.url()} has no candidate to {decision}")
    current = read_current(channel, private_key)
    if current.sequence != seen.sequence:
        raise ReleaseError(
            f"{channel.location.url(POINTER_FILE)} moved to sequence {current.sequence} since it was read "
            f"(sequence {seen.sequence}); nothing changed: run the step again"
        )
    sequence = seen.sequence + 1
    history = (*seen.history, _entry(decision, candidate.version, why, sequence, thresholds))
    if decision == PROMOTE:
        pointer = ChannelPointer(
            candidate.version, candidate.release_sha256, sequence, utc_iso(), history=history
        )
    elif decision == EXPAND and fraction is not None:
        moved = replace(candidate, fraction=round(fraction, 6), step=candidate.step + 1, stepped=utc_iso())
        pointer = replace(seen, sequence=sequence, candidate=moved, history=history)
    elif decision == ROLLBACK:
        pointer = replace(seen, sequence=sequence, candidate=None, history=history)
    else:
        raise ReleaseError(f"{decision!r} does not move the pointer")
    return _write(channel, pointer, private_key)
