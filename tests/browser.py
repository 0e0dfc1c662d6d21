"""Debian's Chromium driven by selenium, offline: the binary and the driver are set explicitly and
``SE_OFFLINE`` keeps Selenium Manager from ever downloading one. And ``wait_for``, the screen tests'
way to await a condition instead of sleeping."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def wait_for(condition: Callable[[], Any], timeout_s: float = 15.0, what: str = "the condition") -> Any:
    """The first truthy value of ``condition()``, polled every 20 ms; AssertionError after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def require_chromium() -> None:
    """Skip, naming the fix, where Debian's chromium and chromium-driver are not installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(
            f"needs Debian's chromium and chromium-driver (scripts/bootstrap.sh): {', '.join(missing)}"
        )


def start_chromium(width: int, height: int, scale: float = 1.0) -> Any:
    """A headless Chromium whose page (the viewport, not the window) is ``width`` x ``height``
    CSS pixels, logging every network request (``goog:loggingPrefs``)."""
    require_chromium()
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=Service(str(CHROMEDRIVER or shutil.which("chromedriver")))
    )
    resize(driver, width, height, scale)
    return driver


def resize(driver: Any, width: int, height: int, scale: float = 1.0) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
    )


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
