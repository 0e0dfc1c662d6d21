"""The MQTT link against a real Mosquitto: status, queued predictions, feedback round trip."""

import json
import queue
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.core.config import MqttConfig
from edge.runtime.feedback import handle_feedback
from edge.runtime.mqtt import MqttLink
from edge.runtime.store import PredictionRecord, Store
from tests.services import Mosquitto, MqttSubscriber


@pytest.fixture
def broker(tmp_path):
    service = Mosquitto(tmp_path).start()
    yield service
    service.stop()


@pytest.fixture
def persistent_broker(tmp_path):
    """A broker whose sessions survive its restarts: a listener subscribed before an outage gets
    what is published after it, whoever reconnects first."""
    service = Mosquitto(tmp_path, persistent=True).start()
    yield service
    service.stop()


class Listener(MqttSubscriber):
    """(topic, payload, retain) of each message; ``session`` names a persistent session."""

    def __init__(self, port: int, topic: str, session: str = "") -> None:
        super().__init__(port, topic, lambda m: (m.topic, json.loads(m.payload), m.retain), session)
        assert self.subscribed.wait(10), "the broker did not confirm the subscription"

    def next(self, timeout_s: float = 10.0):
        return self.messages.get(timeout=timeout_s)


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _settings(port: int, **extra) -> MqttConfig:
    return MqttConfig(**{"port": port, "topic_prefix": "asl/test", "keepalive_s": 2, **extra})


def _link(settings: MqttConfig, reconnect_s: tuple[float, float] = (1, 2)) -> MqttLink:
    return MqttLink(settings, reconnect_s)


def test_status_is_retained_online_then_offline(broker):
    link = _link(_settings(broker.port))
    link.start()
    assert _wait(lambda: link.stats.connected)
    listener = Listener(broker.port, "asl/test/status")
    topic, payload, retained = listener.next()
    assert (topic, payload, retained) == ("asl/test/status", {"schema": 1, "state": "online"}, True)
    link.stop()
    assert listener.next()[1]["state"] == "offline"
    listener.close()


def test_last_will_says_offline_when_the_process_dies(broker):
    code = (
        "import time, sys; sys.path.insert(0, '.');"
        "from edge.core.config import MqttConfig; from edge.runtime.mqtt import MqttLink;"
        f"l = MqttLink(MqttConfig(port={broker.port}, topic_prefix='asl/test', keepalive_s=1)); l.start();"
        "time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    listener = Listener(broker.port, "asl/test/status")
    try:
        assert listener.next()[1]["state"] == "online"
        child.kill()
        assert listener.next(timeout_s=10)[1]["state"] == "offline"
    finally:
        child.kill()
        child.wait()
        listener.close()


def test_predictions_wait_for_a_restarted_broker_in_order_and_overflow_is_counted(persistent_broker):
    broker = persistent_broker
    listener = Listener(broker.port, "asl/test/prediction", session="listener")
    link = _link(_settings(broker.port, queue_limit=3))
    link.start()
    assert _wait(lambda: link.stats.connected)
    broker.stop()
    assert _wait(lambda: not link.stats.connected)
    for index in range(5):
        link.publish("prediction", {"id": f"p{index}", "word": "book"})
    assert (link.pending, link.stats.dropped) == (3, 2)
    broker.start()
    ids = [listener.next(timeout_s=15)[1]["id"] for _ in range(3)]
    link.publish("prediction", {"id": "p5", "word": "go"})
    ids.append(listener.next()[1]["id"])
    link.stop()
    listener.close()
    assert ids == ["p2", "p3", "p4", "p5"]
    assert link.pending == 0
    assert link.stats.connects == 2


def test_connect_hooks_and_subscriptions_come_back_with_every_connect(broker):
    """The general hooks Home Assistant discovery uses: a hook that publishes a retained message as
    it is (no schema field, no queue), and a subscription on an absolute topic with wildcards."""
    link = _link(_settings(broker.port))
    received: queue.Queue[bytes] = queue.Queue()
    assert not link.publish_raw("fleet/config", b"{}")  # not connected: not sent, not queued
    link.add_connect_hook(lambda: link.publish_raw("fleet/config", b'{"kiosk": 1}', retain=True))
    link.subscribe("fleet/+/status", received.put)

    def hook_and_subscription_work(announcement: bytes) -> None:
        config = MqttSubscriber(broker.port, "fleet/config", lambda m: (bytes(m.payload), m.retain))
        assert config.messages.get(timeout=10) == (b'{"kiosk": 1}', True)
        config.client.publish("fleet/ha/status", announcement, qos=1)
        assert received.get(timeout=10) == announcement
        config.close()

    link.start()
    assert _wait(lambda: link.stats.connected)
    hook_and_subscription_work(b"online")
    broker.stop()
    assert _wait(lambda: not link.stats.connected)
    broker.start()  # no persistence: the retained config is gone until the hook runs again
    assert _wait(lambda: link.stats.connects == 2, timeout_s=15)
    hook_and_subscription_work(b"online again")
    link.stop()
    assert link.pending == 0


def test_feedback_round_trip_and_rejections(broker, tmp_path):
    store = Store(tmp_path / "state")
    store.add_prediction(PredictionRecord(id="p-1", word="book", confidence=0.9, top_k=[], model_id="m"))
    link = _link(_settings(broker.port))
    link.subscribe(link.topic("feedback"), lambda p: link.publish("feedback/ack", handle_feedback(p, store)))
    link.start()
    assert _wait(lambda: link.stats.connected)
    acks = Listener(broker.port, "asl/test/feedback/ack")
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    for payload in (
        b'{"prediction_id": "p-1", "correct": false, "label": "drink"}',
        b"\xff garbage",
        b'{"prediction_id": "p-404", "correct": true}',
        b"x" * 10000,
    ):
        sender.publish("asl/test/feedback", payload, qos=1).wait_for_publish(5)
    replies = [acks.next()[1] for _ in range(4)]
    sender.disconnect()
    sender.loop_stop()
    acks.close()
    link.stop()
    assert replies[0]["status"] == "stored"
    assert replies[0]["feedback"]["predicted_word"] == "book"
    assert replies[0]["feedback"]["label"] == "drink"
    assert [r["status"] for r in replies[1:]] == ["rejected"] * 3
    assert "UTF-8" in replies[1]["reason"]
    assert replies[2]["prediction_id"] == "p-404"
    assert "exceeds" in replies[3]["reason"]
    assert store.counts()["feedback"] == 1


def test_username_with_password_file(tmp_path):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk", "s3cret"], check=True)
    service = Mosquitto(tmp_path, extra=f"password_file {passwords}\n").start()
    try:
        (tmp_path / "good").write_text("s3cret\n")
        (tmp_path / "bad").write_text("wrong\n")
        refused = _link(_settings(service.port, username="kiosk", password_file=str(tmp_path / "bad")))
        refused.start()
        accepted = _link(_settings(service.port, username="kiosk", password_file=str(tmp_path / "good")))
        accepted.start()
        assert _wait(lambda: accepted.stats.connected)
        assert _wait(lambda: refused.stats.error is not None)  # the broker answered it: no
        assert not refused.stats.connected
        refused.stop()
        accepted.stop()
    finally:
        service.stop()


def test_password_from_the_systemd_credential(tmp_path, monkeypatch):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk", "s3cret"], check=True)
    service = Mosquitto(tmp_path, extra=f"password_file {passwords}\n").start()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    try:
        anonymous = _link(_settings(service.port, username="kiosk"))
        anonymous.start()
        (credentials / "mqtt-password").write_text("s3cret\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
        (tmp_path / "bad").write_text("wrong\n")
        explicit = _link(_settings(service.port, username="kiosk", password_file=str(tmp_path / "bad")))
        explicit.start()
        credential = _link(_settings(service.port, username="kiosk"))
        credential.start()
        assert _wait(lambda: credential.stats.connected)
        assert _wait(lambda: anonymous.stats.error is not None and explicit.stats.error is not None)
        assert not anonymous.stats.connected, "without the credential there is no password"
        assert not explicit.stats.connected, "an explicit password_file wins over the credential"
        for link in (anonymous, explicit, credential):
            link.stop()
    finally:
        service.stop()


def test_unreadable_password_file_is_a_config_error(tmp_path):
    from edge.runtime.mqtt import MqttError

    with pytest.raises(MqttError, match=r"mqtt\.password_file"):
        MqttLink(MqttConfig(username="kiosk", password_file=str(tmp_path / "missing")))


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)


def _certificate(folder: Path, name: str, ca: str, subject_alt_name: str) -> None:
    """``name.key`` and ``name.crt``, signed by ``ca``."""
    _openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr")  # fmt: skip
    (folder / f"{name}.ext").write_text(f"subjectAltName={subject_alt_name}\n")
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA with a server certificate for 127.0.0.1 and a client certificate, and a
    second CA that signed nothing the broker uses."""
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt")  # fmt: skip
    _certificate(folder, "server", "ca", "IP:127.0.0.1")
    _certificate(folder, "client", "ca", "DNS:kiosk-1")
    return folder


def _tls_broker(folder: Path, pki: Path, mutual: bool = False) -> Mosquitto:
    tls = f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
    if mutual:
        tls += "require_certificate true\n"
    return Mosquitto(folder, extra=tls).start()


def test_tls_with_a_private_ca_and_mutual_tls(pki, tmp_path):
    service = _tls_broker(tmp_path, pki, mutual=True)
    try:
        link = _link(
            _settings(
                service.port,
                tls_ca=str(pki / "ca.crt"),
                tls_cert=str(pki / "client.crt"),
                tls_key=str(pki / "client.key"),
            )
        )
        link.start()
        assert _wait(lambda: link.stats.connected)
        assert link.health().mqtt_error is None
        link.stop()
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "another CA",
            "presented a certificate that was refused: self-signed certificate in certificate chain",
        ),
        ("another host name", "Hostname mismatch, certificate is not valid for 'localhost'"),
        ("no client certificate", "the broker requires a client certificate"),
        ("plain MQTT port", "connection failed"),
    ],
)
def test_each_refused_connection_says_why_once_and_in_health(pki, tmp_path, caplog, case, expected):
    service = _tls_broker(tmp_path, pki, mutual=case == "no client certificate")
    settings = {
        "another CA": {"tls_ca": str(pki / "other-ca.crt")},
        "another host name": {"tls_ca": str(pki / "ca.crt"), "host": "localhost"},
        "no client certificate": {"tls_ca": str(pki / "ca.crt")},
        "plain MQTT port": {},
    }[case]
    link = _link(_settings(service.port, **settings), (0.1, 0.2))
    try:
        with caplog.at_level("WARNING", logger="edge.runtime.mqtt"):
            link.start()
            assert _wait(lambda: link.stats.error is not None)
            time.sleep(1.5)  # several retries, each refused the same way
        health = link.health()
    finally:
        link.stop()
        service.stop()
    assert health.mqtt_connected is False
    assert expected in str(health.mqtt_error)
    assert (health.worker.state, health.worker.last_error) == ("failing", health.mqtt_error)
    logged = [record.getMessage() for record in caplog.records if expected in record.getMessage()]
    assert len(logged) == 1, logged


def test_an_empty_credential_is_no_password(tmp_path, monkeypatch):
    """The installer leaves the credential files empty: that means "not given", not a blank password."""
    from edge.runtime.mqtt import password_path

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "mqtt-password").write_text("\n")
    assert password_path(MqttConfig(username="kiosk")) is None
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    assert password_path(MqttConfig(username="kiosk")) == tmp_path / "mqtt-password"


def test_health_never_takes_a_predictions_place_in_the_offline_queue(persistent_broker):
    broker = persistent_broker
    listener = Listener(broker.port, "asl/test/+", session="listener")
    link = _link(_settings(broker.port, queue_limit=3))
    link.start()
    assert _wait(lambda: link.stats.connected)
    broker.stop()
    assert _wait(lambda: not link.stats.connected)
    for index in range(3):
        link.publish("prediction", {"id": f"p{index}"})
    for tick in range(20):
        link.publish_periodic("health", {"tick": tick})
    assert (link.pending, link.stats.dropped) == (3, 0)
    broker.start()
    received = []
    while len([topic for topic, _, _ in received if topic.endswith("prediction")]) < 3:
        received.append(listener.next(timeout_s=15))
    link.publish_periodic("health", {"tick": "now"})
    received.append(listener.next())
    link.stop()
    listener.close()
    assert [payload["id"] for topic, payload, _ in received if topic.endswith("prediction")] == [
        "p0",
        "p1",
        "p2",
    ]
    # The offline ticks were never queued: the only health message is the one sent when connected.
    assert [payload for topic, payload, _ in received if topic.endswith("health")] == [
        {"schema": 1, "tick": "now"}
    ]
    assert link.health().mqtt_delivered == 3


def test_messages_in_flight_when_the_broker_dies_are_sent_once_to_the_next(persistent_broker):
    """Paho had them (written, no PUBACK yet) when the broker died: they come back to the link's
    queue on reconnect and reach the next broker exactly once each."""
    broker = persistent_broker
    listener = Listener(broker.port, "asl/test/prediction", session="listener")
    link = _link(_settings(broker.port))
    link.start()
    assert _wait(lambda: link.stats.connected)
    assert broker.process is not None
    broker.process.send_signal(subprocess.signal.SIGSTOP)
    for index in range(5):
        link.publish("prediction", {"id": f"p{index}"})
    assert _wait(lambda: link.pending == 5 and not link._queue)  # all handed to paho, none acked
    broker.process.kill()
    broker.process.wait()
    broker.process = None
    broker.start()
    ids = [listener.next(timeout_s=20)[1]["id"] for _ in range(5)]
    time.sleep(1.0)
    assert listener.messages.empty(), "a message arrived twice"
    link.stop()
    listener.close()
    assert ids == [f"p{index}" for index in range(5)]
    assert (link.health().mqtt_delivered, link.pending, link.stats.dropped) == (5, 0, 0)
