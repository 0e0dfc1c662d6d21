"""Real services for tests, on loopback and free ports, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.demo.broker import Mosquitto, free_port
from edge.demo.s3store import SeaweedFS, free_port_pair

__all__ = [
    "ROOT",
    "DaemonProcess",
    "Mosquitto",
    "MqttSubscriber",
    "SeaweedFS",
    "SlowLink",
    "free_port",
    "free_port_pair",
    "running_daemon",
    "synthetic_sentence",
]

ROOT = Path(__file__).resolve().parent.parent


def synthetic_sentence(folder: Path, seed: int = 31) -> Path:
    """A video of the synthetic signer signing one sentence (four words in about 10 s), for a
    daemon to recognize; ``folder/sentences.json`` lists its words and their spans."""
    from edge.demo.synth import write_dataset

    write_dataset(folder, 0, seed, sentences=1, progress=False)
    return folder / "sentences" / "00000.mp4"


class DaemonProcess(subprocess.Popen):
    """``asl-edge ARGS`` from this checkout, its log written to a file rather than a pipe: a pipe
    nobody reads until the end fills and then blocks the daemon's logging, and with it the thread
    that logs. ``communicate`` and ``log`` return the log as text."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self._log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (as long as the process)
        super().__init__(
            [sys.executable, "-m", "asl_edge", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
        )

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the exit; the daemon's stdout is discarded, its log is the second item."""
        self.wait(timeout)
        return "", self.log()


@contextlib.contextmanager
def running_daemon(config: Path) -> Iterator[DaemonProcess]:
    """``asl-edge run --config CONFIG``; killed on the way out if the test did not stop it; when the
    test fails, the daemon's log goes to the test's captured output."""
    # A daemon still running when the test fails is aborted, and faulthandler writes every
    # thread's stack into its log: a hang shows where it hangs.
    process = DaemonProcess("run", "--config", str(config), env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        yield process
    except BaseException:
        running = process.poll() is None
        state = "was running, aborted" if running else f"had exited ({process.returncode})"
        if running:
            process.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        print(f"--- the daemon {state}; its log (last 12000 characters) ---\n{process.log()[-12000:]}")
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process._log.close()


class MqttSubscriber:
    """A plain paho client on the local broker subscribed to ``topic`` (QoS 1); each message goes
    into ``messages`` as whatever ``record`` makes of it. With a ``session`` name the session is
    persistent: on a ``Mosquitto(persistent=True)`` broker, what is published while the client is
    away (a broker restart) waits for it, so it never races the publisher to reconnect."""

    def __init__(
        self, port: int, topic: str, record: Callable[[mqtt.MQTTMessage], Any], session: str = ""
    ) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.subscribed = threading.Event()  # set once the broker confirmed the subscription
        self.client = (
            mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=session, clean_session=False)
            if session
            else mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        )
        self.client.reconnect_delay_set(0.1, 1)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.put(record(m))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SlowLink:
    """A TCP relay on loopback that passes at most ``bytes_per_s`` from the server to the client (a
    slow network for a real download), counting what it passed."""

    def __init__(self, target_port: int, bytes_per_s: float) -> None:
        self.target_port, self.bytes_per_s = target_port, bytes_per_s
        self.relayed = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(server, client, 1.0 / self.bytes_per_s), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, seconds_per_byte: float) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(16384):
                sink.sendall(chunk)
                if seconds_per_byte:
                    self.relayed += len(chunk)
                    time.sleep(len(chunk) * seconds_per_byte)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
