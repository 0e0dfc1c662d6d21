"""``asl-edge screen``: the kiosk's browser, full screen on the page the daemon serves.

It waits until the daemon answers (a model load or an engine build can take minutes, and a
browser that found nothing would show an error page for good), then replaces itself with Chromium
in kiosk mode on the configured address: inside the ``cage`` Wayland compositor when there is no
desktop (``--cage``, systemd/asl-edge-screen.service), or in the desktop session that started it.
When the screen has a token, the page gets it in the address's fragment (never sent to a server).
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request

from edge.core.config import ScreenConfig
from edge.core.errors import AslEdgeError
from edge.runtime.screen.server import page_url, read_token

BROWSERS = ("chromium", "chromium-browser", "/snap/bin/chromium", "google-chrome-stable", "google-chrome")
KIOSK_FLAGS = (
    "--kiosk",
    "--noerrdialogs",
    "--disable-infobars",
    "--disable-session-crashed-bubble",
    "--disable-translate",
    "--no-first-run",
    "--no-default-browser-check",
    "--overscroll-history-navigation=0",
    "--disable-pinch",
    "--check-for-update-interval=31536000",
    "--ozone-platform-hint=auto",
    # speech without a touch first, for the page's "speak words" toggle after a reload
    "--autoplay-policy=no-user-gesture-required",
)


class KioskError(AslEdgeError):
    """The kiosk browser cannot be started (no browser, no cage, the screen is off)."""


def find_browser(name: str | None = None) -> str:
    """The browser to run: ``name`` (a command or a path), else the first Chromium found."""
    for candidate in (name,) if name else BROWSERS:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    wanted = name or " or ".join(BROWSERS)
    raise KioskError(f"no browser found ({wanted}): install Chromium (apt install chromium, or snap)")


def kiosk_url(settings: ScreenConfig) -> str:
    if not settings.enabled:
        raise KioskError("[screen] enabled = false: the daemon serves no page to show")
    if settings.port == 0:
        raise KioskError("[screen] port = 0 picks a new port at each start: set a fixed port for the kiosk")
    url = page_url(settings.host, settings.port)
    token = read_token(settings)
    return f"{url}#token={token}" if token else url


def kiosk_command(
    settings: ScreenConfig, browser: str | None = None, cage: bool = False, extra: tuple[str, ...] = ()
) -> list[str]:
    """The command line: ``[cage --] browser KIOSK_FLAGS [extra] URL``."""
    command = [find_browser(browser), *KIOSK_FLAGS, *extra, kiosk_url(settings)]
    if cage:
        compositor = shutil.which("cage")
        if compositor is None:
            raise KioskError(
                "cage is not installed (apt install cage), or leave out --cage in a desktop session"
            )
        command = [compositor, "--", *command]
    return command


def wait_for_page(url: str, timeout_s: float, interval_s: float = 1.0) -> bool:
    """True once ``url`` answers 200 (the daemon is up), False after ``timeout_s``."""
    address = url.split("#", 1)[0]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(address, timeout=min(5.0, max(0.5, timeout_s))) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() + interval_s > deadline:
            return False
        time.sleep(interval_s)
