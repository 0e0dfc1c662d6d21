"""Progress of a long calibration stage: clips done, time elapsed, time left.

Calibrating the full-size I3D takes seconds a clip, so a stage over 64 clips runs for minutes;
a line every few seconds says how far it is and about how long it still needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """Counts the clips of one stage and reports a line on the first clip, then at most every
    ``every_s`` seconds, and on the last one."""

    def __init__(
        self,
        stage: str,
        total: int,
        report: Callable[[str], None],
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage = stage
        self.total = total
        self.done = 0
        self._report = report
        self._every_s = every_s
        self._clock = clock
        self._started = clock()
        self._last_report: float | None = None

    def line(self) -> str:
        elapsed = self._clock() - self._started
        text = f"{self.stage}: {self.done}/{self.total} clips, {_duration(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += f", about {_duration(elapsed / self.done * (self.total - self.done))} left"
        return text

    def step(self) -> None:
        self.done += 1
        now = self._clock()
        due = self._last_report is None or now - self._last_report >= self._every_s
        if due or self.done >= self.total:
            self._last_report = now
            self._report(self.line())

    def track(self, items: Iterable[Item]) -> Iterator[Item]:
        """``items``, counting each one once the consumer asks for the next."""
        for item in items:
            yield item
            self.step()
