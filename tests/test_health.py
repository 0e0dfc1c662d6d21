"""The health message's schema: the README's reference is rendered from it, and everything that
reads health by name (metrics, Home Assistant, the screen's banner) names fields it has."""

import dataclasses
import re
import typing
from pathlib import Path

from edge.core.config_doc import current_block
from edge.runtime import metrics
from edge.runtime.health_schema import (
    DISABLED,
    END,
    START,
    HealthSnapshot,
    WorkerHealth,
    render_health_reference,
)
from edge.runtime.homeassistant import ENTITIES

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_health_fields() -> set[str]:
    """The field names the README's health reference lists."""
    block = current_block(README.read_text(encoding="utf-8"), START, END)
    return set(re.findall(r"^\| `(\w+)` \|", block, re.M))


def _snapshot() -> HealthSnapshot:
    """Every section with placeholder values of its own types: the message's shape."""
    sections = {}
    for name, cls in typing.get_type_hints(HealthSnapshot).items():
        values = {f.name: DISABLED if f.name == "worker" else None for f in dataclasses.fields(cls)}
        sections[name] = cls(**values)
    return HealthSnapshot(**sections)


def test_readme_health_reference_is_current():
    block = current_block(README.read_text(encoding="utf-8"), START, END)
    assert block == render_health_reference(), (
        "README.md's health reference differs from edge/runtime/health_schema.py: run `make docs`"
    )


def test_every_field_of_the_message_is_in_the_readme():
    payload = _snapshot().payload()
    listed = readme_health_fields()
    assert set(payload) <= listed, set(payload) - listed
    assert {"schema", "time", "interval_s"} <= listed  # the MQTT envelope and health.json's own
    assert set(payload["workers"]) == {
        "capture",
        "mqtt",
        "feedback",
        "store",
        "sync",
        "reporter",
        "metrics",
        "model",
        "updater",
        "shadow",
        "screen",
    }
    assert all(set(worker) == {"state", "restarts", "last_error"} for worker in payload["workers"].values())
    assert "worker" not in payload  # a section's worker goes under workers, never on top


def test_metrics_and_home_assistant_read_fields_the_schema_has():
    fields = set(_snapshot().payload())
    read_by_metrics = {key for _, key, _ in (*metrics._HEALTH_COUNTERS, *metrics._HEALTH_GAUGES)}
    assert read_by_metrics <= fields, read_by_metrics - fields
    templates = " ".join(
        f"{e.value_template} {e.attributes_template or ''}" for e in ENTITIES if e.topic == "health"
    )
    read_by_homeassistant = set(re.findall(r"value_json\.(\w+)", templates))
    assert read_by_homeassistant and read_by_homeassistant <= fields, read_by_homeassistant - fields


def test_a_worker_is_failing_exactly_while_it_has_an_error():
    assert WorkerHealth.of("broker down", 2) == WorkerHealth("failing", 2, "broker down")
    assert WorkerHealth.of(None, 2) == WorkerHealth("running", 2, None)
    assert WorkerHealth.of(None, working=False).state == "starting"
