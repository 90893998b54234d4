"""`IncidentEvent.from_json` skips the per-field control-character check for payloads that cannot fail it (issue 8:
central's CPU per message); it must accept and refuse exactly what `model_validate_json` does, with the same
errors, hostile payloads included."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch.wire import events as events_module
from gridwatch.wire.events import IncidentEvent
from tests.central.factories import make_event

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import hostile_payloads

VALID: dict[str, Any] = json.loads(make_event("inc-fast-000001").to_json())
FREE_TEXT = [("zone",), ("model", "name"), ("model", "version"), ("objects", 0, "class_name"),
             ("objects", 0, "role")]


def outcome(parse: Any, payload: bytes | str) -> tuple[str, Any]:
    try:
        return "ok", parse(payload)
    except ValidationError as exc:
        return "error", exc.errors(include_url=False, include_context=False)  # the msg says what ctx held


def same_as_the_model(payload: bytes | str) -> tuple[str, Any]:
    fast, model = outcome(IncidentEvent.from_json, payload), outcome(IncidentEvent.model_validate_json, payload)
    assert fast == model
    return fast


def with_text(path: tuple[Any, ...], value: str, *, ascii_only: bool = True) -> bytes:
    event = json.loads(json.dumps(VALID))
    if path[0] == "objects" and not event["objects"]:
        event["objects"] = [{"track_id": 1, "class_name": "car", "confidence": 0.9}]
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(event, ensure_ascii=ascii_only).encode()


def test_the_fast_validator_is_live_and_builds_the_models_classes() -> None:
    assert events_module._plain_validator() is not None
    payload = make_event("inc-fast-000002", 3, "ended").to_json().encode()
    kind, event = same_as_the_model(payload)
    assert kind == "ok" and type(event) is IncidentEvent and type(event.model) is events_module.ModelRef


@pytest.mark.parametrize("path", FREE_TEXT)
@pytest.mark.parametrize("text", ["a\nb", "\x00", "tab\there", "del\x7f", "esc\x1b[31m", "bell\x07"])
def test_control_characters_are_refused_in_every_free_text_field(path: tuple[Any, ...], text: str) -> None:
    for ascii_only in (True, False):  # as JSON escapes, and raw (DEL raw is valid JSON; C0 raw is not)
        kind, _errors = same_as_the_model(with_text(path, text, ascii_only=ascii_only))
        assert kind == "error", (path, text, ascii_only)
    escaped = with_text(path, text).decode()
    assert same_as_the_model(escaped)[0] == "error"  # a str payload too


def test_an_escaped_plain_character_is_still_accepted() -> None:
    payload = with_text(("zone",), "kerb").replace(b'"kerb"', b'"k\\u0065rb"')
    kind, event = same_as_the_model(payload)
    assert kind == "ok" and event.zone == "kerb"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
          database=None)
@given(payload=hostile_payloads.payloads(VALID))
def test_hostile_payloads_get_the_models_answer(payload: bytes) -> None:
    same_as_the_model(payload)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(path=st.sampled_from(FREE_TEXT), text=st.text(max_size=12), ascii_only=st.booleans())
def test_any_text_in_a_free_text_field_gets_the_models_answer(path: tuple[Any, ...], text: str,
                                                               ascii_only: bool) -> None:
    same_as_the_model(with_text(path, text, ascii_only=ascii_only))
