"""Real services for tests, on loopback and free ports, stopped by PID."""

from __future__ import annotations

import contextlib
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.demo.broker import Mosquitto, free_port

__all__ = [
    "ROOT",
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


def free_port_pair() -> int:
    """A free port below 55535 whose +10000 twin (SeaweedFS's gRPC port) is free too."""
    while True:
        port = free_port()
        if port >= 55535:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class SeaweedFS:
    """A private S3 endpoint (``weed mini``) with a fresh data directory; any access key is accepted.

    ``stop``/``start`` simulate an outage on the same port. Readiness is probed with a real PUT,
    since the volume server registers after the S3 port opens.
    """

    ACCESS_KEY = "test-access"
    SECRET_KEY = "test-secret"

    def __init__(self, folder: Path) -> None:
        weed = Path(sys.executable).parent / "weed"
        self.binary = str(weed) if weed.exists() else shutil.which("weed") or "weed"
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "logs").mkdir(exist_ok=True)
        self.ports = {name: free_port_pair() for name in ("master", "volume", "filer", "s3", "admin")}
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen[bytes] | None = None

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": 1},
                connect_timeout=1,
                read_timeout=10,
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def write_credentials(self, path: Path) -> Path:
        path.write_text(
            f"[default]\naws_access_key_id = {self.ACCESS_KEY}\naws_secret_access_key = {self.SECRET_KEY}\n",
            encoding="utf-8",
        )
        return path

    def start(self, timeout_s: float = 30.0) -> SeaweedFS:
        ports = self.ports
        self.process = subprocess.Popen(
            [
                self.binary,
                f"-logdir={self.folder / 'logs'}",
                "mini",
                f"-dir={self.folder / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={ports['master']}",
                f"-volume.port={ports['volume']}",
                f"-filer.port={ports['filer']}",
                f"-s3.port={ports['s3']}",
                f"-admin.port={ports['admin']}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                "-webdav=false",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                client.put_object(Bucket="ready-probe", Key="probe", Body=b"1")
                return self
            except (BotoCoreError, ClientError):
                with contextlib.suppress(BotoCoreError, ClientError):
                    client.create_bucket(Bucket="ready-probe")
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not accept a PUT on {self.endpoint_url} in {timeout_s} s")

    def stop(self) -> None:
        """SIGTERM, and SIGKILL after a short grace: ``weed`` sometimes hangs on the way out."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def synthetic_sentence(folder: Path, seed: int = 31) -> Path:
    """A video of the synthetic signer signing one sentence (four words in about 10 s), for a
    daemon to recognize; ``folder/sentences.json`` lists its words and their spans."""
    from edge.demo.synth import write_dataset

    write_dataset(folder, 0, seed, sentences=1, progress=False)
    return folder / "sentences" / "00000.mp4"


@contextlib.contextmanager
def running_daemon(config: Path) -> Iterator[subprocess.Popen[str]]:
    """``asl-edge run --config CONFIG`` from this checkout, its log on the piped stderr; killed on
    the way out if the test did not stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "asl_edge", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class MqttSubscriber:
    """A plain paho client on the local broker subscribed to ``topic`` (QoS 1); each message goes
    into ``messages`` as whatever ``record`` makes of it."""

    def __init__(self, port: int, topic: str, record: Callable[[mqtt.MQTTMessage], Any]) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.subscribed = threading.Event()  # set once the broker confirmed the subscription
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
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
