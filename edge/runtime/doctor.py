"""``asl-edge doctor``: what an installer runs last on a new kiosk. It tries each configured part
for real, as the daemon would use it, and says in one line per part what works, or what is wrong
and the fix:

- ``config``: the checks of ``asl-edge check-config``;
- ``model``: the bundle loads on the backend the daemon would choose and answers one inference
  (its latency); where TensorRT is installed, an engine for this very device must be what runs
  (for a bundle of one's own; the demo bundle has none);
- ``camera``: ``[source] uri`` delivers a few frames;
- ``broker``: ``[mqtt]`` accepts a connection, with its TLS and password;
- ``s3``: ``[sync]``'s credentials reach the bucket, and a small probe object is written there
  and deleted (sync writes);
- ``channel``: ``[update]``'s pointer and release manifest carry trusted signatures;
- ``disk``: the state directory has room for the store's budget;
- ``clock``: the time is not behind files written before it, nor far from the S3 server's.

A part that is not configured (no bucket, no channel) is ``skipped (not configured)``. Each part
runs on its own thread for at most ``timeout_s``. Nothing is written locally: no store, no
compiled-model cache, no engine build (that takes minutes; the daemon does it at its start).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

import edge
from edge.core.bundle import MANIFEST_FILE, load_bundle, resolve_bundle_path
from edge.core.config import Config, update_endpoint_url
from edge.core.errors import AslEdgeError
from edge.runtime.backends.select import open_backend
from edge.runtime.backends.tensorrt.backend import tensorrt_available
from edge.runtime.capture import Capture, is_live
from edge.runtime.channel import Channel
from edge.runtime.model import smoke_test
from edge.runtime.mqtt import connection_error, mqtt_settings, new_client, tls_reason
from edge.runtime.preflight import problems as machine_problems
from edge.runtime.release_store import ReleaseStore, update_s3_settings
from edge.runtime.releases import (
    POINTER_FILE,
    RELEASE_FILE,
    ChannelPointer,
    ReleaseManifest,
    load_public_keys,
    release_key,
)
from edge.runtime.s3 import S3Settings, error_code, s3_client
from edge.runtime.sync import S3Target

OK, FAIL, SKIPPED = "ok", "FAIL", "skipped"
PART_TIMEOUT_S = 20.0
CAMERA_FRAMES = 5
PROBE_BODY = b"asl-edge doctor: a write probe, deleted at once\n"
CLOCK_BEHIND_FILES_S = 300.0  # a file's time may run ahead of ours by a few minutes, not more
CLOCK_SKEW_S = 120.0  # from the S3 server's clock; S3 refuses requests 15 minutes off
NAME_WIDTH = 8


class PartFailed(AslEdgeError):
    """A part was tried and does not work: what is wrong, and the fix."""

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


@dataclass(frozen=True)
class Finding:
    part: str
    status: str  # OK, FAIL or SKIPPED
    detail: str
    fix: str = ""

    def line(self) -> str:
        name = self.part.ljust(NAME_WIDTH)
        if self.status == SKIPPED:
            return f"{name}skipped ({self.detail})"
        return f"{name}{self.status}: {self.detail}" + (f"; fix: {self.fix}" if self.fix else "")


# A check returns what works (one line), None when its part is not configured, or raises PartFailed.
Check = Callable[[Config, float], "str | None"]


def _bounded(part: str, check: Check, config: Config, timeout_s: float, fix: str) -> Finding:
    """Run ``check`` on a thread of its own; no answer within ``timeout_s`` is a failure."""
    outcome: list[Finding] = []

    def attempt() -> None:
        try:
            detail = check(config, timeout_s)
        except PartFailed as exc:
            outcome.append(Finding(part, FAIL, exc.detail, exc.fix or fix))
        except AslEdgeError as exc:
            outcome.append(Finding(part, FAIL, str(exc), fix))
        except Exception as exc:  # any surprise is a finding about this part, never the end of the others
            outcome.append(Finding(part, FAIL, f"{type(exc).__name__}: {exc}", fix))
        else:
            outcome.append(
                Finding(part, SKIPPED, "not configured") if detail is None else Finding(part, OK, detail)
            )

    worker = threading.Thread(target=attempt, name=f"doctor-{part}", daemon=True)
    worker.start()
    worker.join(timeout_s + 1.0)
    if not outcome:
        return Finding(part, FAIL, f"no answer within {timeout_s:g} s", fix)
    return outcome[0]


# -- camera -------------------------------------------------------------------------------------


def _camera_fix(uri: str) -> str:
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "v4l2":
        return (
            "check the camera with 'ls /dev/video*' and 'v4l2-ctl --list-devices', that the user is "
            "in group video, that nothing else holds it (systemctl stop asl-edge), and [source] uri"
        )
    if scheme == "csi":
        return (
            "check 'systemctl status nvargus-daemon' and "
            "'gst-launch-1.0 nvarguscamerasrc num-buffers=1 ! fakesink', and [source] uri"
        )
    if scheme == "rtsp":
        return f"check that the camera streams: gst-launch-1.0 rtspsrc location={uri} ! fakesink"
    if scheme == "file":
        return "check that [source] uri names a readable video file"
    return "check [source] uri"


def check_camera(config: Config, timeout_s: float) -> str:
    source = config.source
    capture = Capture(source).start()
    frames: list[Any] = []
    started = time.monotonic()
    try:
        for frame in capture.frames(timeout_s=0.2):
            if frame is not None:
                frames.append(frame)
            failed_once = is_live(source.uri) and capture.stats.restarts > 0
            if len(frames) >= CAMERA_FRAMES or failed_once or time.monotonic() - started > timeout_s:
                break
    finally:
        capture.close()
    took_s = time.monotonic() - started
    if len(frames) < CAMERA_FRAMES:
        why = capture.stats.last_error or "no error reported"
        raise PartFailed(
            f"{source.uri}: {len(frames)} frames in {took_s:.1f} s ({why})", _camera_fix(source.uri)
        )
    height, width = frames[0].image.shape[:2]
    return f"{source.uri}: {len(frames)} frames of {width}x{height} in {took_s:.2f} s"


# -- model --------------------------------------------------------------------------------------


def check_model(config: Config, _timeout_s: float) -> str:
    model = config.model
    bundle = load_bundle(resolve_bundle_path(None, model.bundle))
    precision = "fp16" if model.precision == "auto" else model.precision
    build = f"asl-edge build {bundle.path} --precision {precision}"
    would_build = model.backend == "tensorrt" and model.build_if_missing and tensorrt_available()
    try:
        backend, selection = open_backend(
            bundle, model.backend, model.threads, model.precision, build_if_missing=False, cache_dir=None
        )
    except AslEdgeError as exc:
        if would_build:
            raise PartFailed(
                f"{exc} (the daemon builds the engine at its first start: minutes)",
                f"build and test it now: {build}",
            ) from exc
        raise
    try:
        started = time.perf_counter()
        smoke_test(backend)
        latency_ms = (time.perf_counter() - started) * 1000.0
    finally:
        backend.close()
    what = f"{bundle.spec.model_id} on {selection.backend}"
    if not model.bundle:  # the placeholder the installer configures: no engine is expected for it
        return f"{what}: one inference in {latency_ms:.0f} ms (the demo bundle: set [model] bundle to yours)"
    if tensorrt_available() and selection.backend != "tensorrt":
        raise PartFailed(
            f"TensorRT is installed but {what} would run on the CPU: {selection.reason}",
            f"build this device's engine: {build}",
        )
    return f"{what}: one inference in {latency_ms:.0f} ms ({selection.reason})"


# -- broker -------------------------------------------------------------------------------------


def check_broker(config: Config, timeout_s: float) -> str:
    settings = mqtt_settings(config)
    where = f"{settings.host}:{settings.port}"
    tls = bool(settings.tls_ca or settings.tls_cert)
    fix = (
        "check [mqtt] tls_ca, tls_cert, tls_key and host (openssl s_client -connect HOST:PORT -CAfile CA)"
        if tls
        else "start the broker (systemctl status mosquitto) or set [mqtt] host and port"
    )
    # An empty client id: the broker assigns one, so a running daemon's session is never taken over.
    client = new_client(settings, "", reconnect=False)
    answered = threading.Event()
    outcome: dict[str, str] = {}

    def connected(_client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        outcome["refused" if reason.is_failure else "connected"] = str(reason)
        answered.set()

    def disconnected(_client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not answered.is_set():
            outcome["closed"] = str(reason)
        answered.set()

    def logged(_client: mqtt.Client, _userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            outcome.setdefault("socket", text)

    client.on_connect, client.on_disconnect, client.on_log = connected, disconnected, logged
    try:
        client.connect(settings.host, settings.port, settings.keepalive_s)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise PartFailed(f"mqtt {connection_error(exc, settings)}", fix) from exc
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise PartFailed(f"mqtt {where} did not answer within {timeout_s:g} s", fix)
    finally:
        client.disconnect()
        client.loop_stop()
    if "refused" in outcome:
        raise PartFailed(
            f"mqtt {where}: the broker refused the connection: {outcome['refused']}",
            "check [mqtt] username and its password (credentials/mqtt-password or [mqtt] password_file)",
        )
    if "closed" in outcome:
        reason = tls_reason(outcome["socket"]) if "socket" in outcome else outcome["closed"]
        raise PartFailed(f"mqtt {where}: the connection closed before the broker answered: {reason}", fix)
    login = f" as {settings.username}" if settings.username else ""
    return f"mqtt {where} accepted the connection{' over TLS' if tls else ''}{login}"


# -- S3: the sync bucket and the release channel ------------------------------------------------


def _s3_problem(exc: Exception, what: str) -> PartFailed:
    """A failed S3 request in words, with its fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return PartFailed(
            f"{what}: no S3 credentials",
            "put them in /etc/asl-edge/credentials/s3-credentials ([default] aws_access_key_id = ...) "
            "or set [sync] credentials_file",
        )
    if isinstance(exc, EndpointConnectionError):
        return PartFailed(f"{what}: {exc}", "check the endpoint_url and the network path to it")
    code = error_code(exc) if isinstance(exc, ClientError) else ""
    if code in ("404", "NoSuchBucket"):
        return PartFailed(f"{what}: the bucket does not exist", "create it, or correct the bucket's name")
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return PartFailed(
            f"{what}: access denied ({code})",
            "check the keys in s3-credentials and that their policy allows this bucket",
        )
    if code == "RequestTimeTooSkewed":
        return PartFailed(f"{what}: the S3 server says this clock is off", "timedatectl set-ntp true")
    return PartFailed(f"{what}: {type(exc).__name__}: {exc}", "check the S3 settings and the network")


def check_s3(config: Config, _timeout_s: float) -> str | None:
    """The bucket answers with these credentials, and takes (and gives back) a probe object."""
    from botocore.exceptions import BotoCoreError, ClientError

    sync = config.sync
    if not sync.bucket:
        return None
    prefix = sync.prefix.strip("/")
    what = f"s3://{sync.bucket}/{prefix} (sync)"
    target = S3Target(sync)
    parts = (prefix, "doctor", f"device={config.device.id}", f"{uuid.uuid4().hex}.probe")
    key = "/".join(part for part in parts if part)
    try:
        target.client.head_bucket(Bucket=sync.bucket)
        target.put(key, PROBE_BODY, "text/plain")
    except (BotoCoreError, ClientError) as exc:
        raise _s3_problem(exc, what) from exc
    try:
        target.client.delete_object(Bucket=sync.bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        return f"{what}: the bucket answers and took a probe object, but it could not be deleted ({exc})"
    return f"{what}: the bucket answers; a probe object was written and deleted"


def check_channel(config: Config, _timeout_s: float) -> str | None:
    """The pointer and the release manifest it names carry trusted signatures."""
    update = config.update
    if not update.channel:
        return None
    key_fix = "copy the publisher's asl-edge.pub to the kiosk and name it in [update] public_key"
    trusted = load_public_keys(update.public_key)
    channel = Channel(update.channel, update_s3_settings(config))
    url = channel.location.url()
    data = channel.read_document(POINTER_FILE)
    if data is None:
        return f"{url}: nothing published yet (no {POINTER_FILE}); the kiosk runs [model] bundle"
    try:
        pointer = ChannelPointer.verify(data, trusted)
    except AslEdgeError as exc:
        raise PartFailed(f"{url}: {exc}", key_fix) from exc
    adopted = ReleaseStore(Path(config.storage.state_dir).expanduser(), trusted).read_state().sequence
    if pointer.sequence < adopted:
        raise PartFailed(
            f"{url}: the pointer's sequence {pointer.sequence} is older than {adopted}, adopted before",
            "promote the release again on the workstation (asl-edge publish --promote VERSION)",
        )
    manifest_key = release_key(pointer.version, RELEASE_FILE)
    manifest_data = channel.read_document(manifest_key)
    if manifest_data is None:
        raise PartFailed(f"{channel.location.url(manifest_key)} is missing", "publish the release again")
    if hashlib.sha256(manifest_data).hexdigest() != pointer.release_sha256:
        raise PartFailed(
            f"{RELEASE_FILE} of {pointer.version} is not the one the pointer names", "publish it again"
        )
    try:
        manifest = ReleaseManifest.verify(manifest_data, trusted, pointer.version)
    except AslEdgeError as exc:
        raise PartFailed(f"{url}: {exc}", key_fix) from exc
    return (
        f"{url} points to release {pointer.version} (sequence {pointer.sequence}, model {manifest.model_id}, "
        f"{len(manifest.files)} files, {manifest.size} bytes), signed by key {pointer.key_id}"
    )


# -- disk and clock -----------------------------------------------------------------------------


def _existing(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (a state directory not made yet)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_disk(config: Config, _timeout_s: float) -> str:
    folder = Path(config.storage.state_dir).expanduser()
    probe = _existing(folder)
    free_mb = shutil.disk_usage(probe).free / 1e6
    budget_mb = config.storage.max_db_mb
    if not os.access(probe, os.W_OK):
        raise PartFailed(f"{probe} is not writable for this user", "run as the service's user, or chown it")
    if free_mb < budget_mb:
        raise PartFailed(
            f"{free_mb:.0f} MB free in {probe}, less than the store's budget "
            f"([storage] max_db_mb = {budget_mb:g})",
            "free space (journalctl --vacuum-size=100M, old bundles) or lower [storage] max_db_mb",
        )
    return f"{free_mb / 1000:.1f} GB free in {folder} (the store's budget: {budget_mb:g} MB)"


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _s3_server_time(config: Config) -> tuple[float, str] | None:
    """The S3 server's clock (its Date header) and which server, where sync or a channel is set."""
    from botocore.exceptions import BotoCoreError, ClientError

    if config.sync.bucket:
        bucket = config.sync.bucket
        settings = S3Settings(config.sync.endpoint_url, config.sync.region, config.sync.credentials_file)
    elif config.update.channel:
        bucket = config.update.channel[len("s3://") :].partition("/")[0]
        settings = update_s3_settings(config)
    else:
        return None
    server = update_endpoint_url(config) if not config.sync.bucket else config.sync.endpoint_url
    try:
        response = s3_client(settings).head_bucket(Bucket=bucket)
    except ClientError as exc:
        response = exc.response  # an answer all the same: its Date is the server's clock
    except BotoCoreError:
        return None
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    return parsedate_to_datetime(date).timestamp(), server or "AWS S3"


def _ntp_synchronized() -> str:
    """timedatectl's word for it where systemd runs: yes, no, or unknown."""
    if shutil.which("timedatectl") is None:
        return "unknown"
    try:
        answer = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return answer.stdout.strip() if answer.returncode == 0 and answer.stdout.strip() else "unknown"


def check_clock(config: Config, _timeout_s: float, config_path: Path | None = None) -> str:
    now = time.time()
    fix = "set the time: timedatectl set-ntp true (and enable systemd-time-wait-sync), or fit an RTC battery"
    written = [Path(edge.__file__)]
    if config_path is not None:
        written.append(config_path)
    with contextlib.suppress(AslEdgeError):
        written.append(resolve_bundle_path(None, config.model.bundle) / MANIFEST_FILE)
    stamps = [(path.stat().st_mtime, path) for path in written if path.exists()]
    newest_s, newest = max(stamps)
    if now < newest_s - CLOCK_BEHIND_FILES_S:
        raise PartFailed(f"the clock says {_iso(now)}, before {newest} was written ({_iso(newest_s)})", fix)
    detail = f"{_iso(now)}, NTP synchronized: {_ntp_synchronized()}"
    server = _s3_server_time(config)
    if server is not None:
        server_s, where = server
        skew_s = now - server_s
        if abs(skew_s) > CLOCK_SKEW_S:
            raise PartFailed(f"the clock is {skew_s:+.0f} s off the S3 server's ({where})", fix)
        detail += f", {skew_s:+.0f} s from the S3 server's clock"
    return detail


# -- all of it ----------------------------------------------------------------------------------


def examine(config: Config, config_path: Path | None, timeout_s: float = PART_TIMEOUT_S) -> Iterator[Finding]:
    """Each part's finding, in order, as soon as it is known. ``config`` must be schema-valid
    (``read_config`` found no problem); what this machine makes of it is the ``config`` part."""
    found = machine_problems(config)
    where = str(config_path) if config_path else "the default config"
    if found:
        more = f" (and {len(found) - 1} more: asl-edge check-config lists them)" if len(found) > 1 else ""
        yield Finding("config", FAIL, f"{where}: {found[0]}{more}", "correct the config file")
    else:
        yield Finding("config", OK, where)
    # The model before the camera, as the daemon does: OpenVINO's first Core() in a process where
    # GStreamer is already initialised crashes it (OpenVINO 2026.4, GStreamer 1.22).
    parts: tuple[tuple[str, Check, str], ...] = (
        ("model", check_model, "check [model] bundle and backend (asl-edge check-config)"),
        ("camera", check_camera, _camera_fix(config.source.uri)),
        ("broker", check_broker, "check [mqtt] host and port, and that the broker runs"),
        ("s3", check_s3, "check [sync] bucket, endpoint_url and the credentials"),
        ("channel", check_channel, "check [update] channel, endpoint_url and the credentials"),
        ("disk", check_disk, "check [storage] state_dir"),
        ("clock", lambda c, t: check_clock(c, t, config_path), "check the system clock (timedatectl)"),
    )
    for part, check, fix in parts:
        yield _bounded(part, check, config, timeout_s, fix)
