"""Nothing slow on the frame path: the health reporter takes snapshots without waiting for the disk,
and the watchdog pings go over one socket, at most once a second."""

import dataclasses
import json
import socket
import threading
import time
import typing

from edge.core.config import MqttConfig
from edge.runtime.daemon import WATCHDOG_INTERVAL_S, SystemdNotifier
from edge.runtime.health_schema import DISABLED, HealthSnapshot, RecognitionHealth
from edge.runtime.keeper import StoreKeeper
from edge.runtime.mqtt import MqttLink
from edge.runtime.reporter import HealthReporter


def _snapshot(predictions: int) -> HealthSnapshot:
    sections = {}
    for name, cls in typing.get_type_hints(HealthSnapshot).items():
        values = {f.name: DISABLED if f.name == "worker" else None for f in dataclasses.fields(cls)}
        sections[name] = cls(**values)
    sections["recognition"] = RecognitionHealth(30.0, 30.0, 0, 0, 0, predictions)
    return HealthSnapshot(**sections)


def test_a_slow_disk_never_holds_up_the_snapshots_and_the_newest_is_sent(tmp_path):
    keeper = StoreKeeper(tmp_path, 100.0)
    keeper.open()
    disk = threading.Event()
    entered = threading.Event()

    def slow_maintenance() -> None:  # a health tick stuck on the disk
        entered.set()
        disk.wait(10)

    reporter = HealthReporter(MqttLink(MqttConfig()), tmp_path, 1.0, keeper, slow_maintenance)
    reporter.start()
    try:
        reporter.offer(_snapshot(1), publish=True)
        assert entered.wait(5)
        started = time.monotonic()
        for predictions in range(2, 50):
            reporter.offer(_snapshot(predictions), publish=predictions % 10 == 0)
        assert time.monotonic() - started < 0.5, "offering a snapshot waited for the disk"
        disk.set()
    finally:
        reporter.stop()
        keeper.close()
    written = json.loads((tmp_path / "health.json").read_text())
    assert written["predictions"] == 49  # the newest, published because one it replaced was due
    assert written["pending_feedback"] == 0  # measured on the reporter's thread, with the store
    assert written["workers"]["store"] == {"state": "running", "restarts": 0, "last_error": None}
    assert reporter.health().worker.state == "stopped"


def test_watchdog_pings_are_throttled_over_one_kept_socket(tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(5)
        notifier = SystemdNotifier(address)
        notifier.notify("READY=1")
        for _ in range(1000):  # a frame rate far above the ping rate
            notifier.ping()
        time.sleep(WATCHDOG_INTERVAL_S)
        notifier.ping()
        received = [listener.recv(64).decode() for _ in range(3)]
        notifier.close()
        listener.settimeout(0.2)
        try:
            extra = listener.recv(64)
        except TimeoutError:
            extra = None
    assert received == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]
    assert extra is None
