"""`end_reason` on the wire: required on `ended` (schema 1.1), absent otherwise; 1.0 events stay accepted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridwatch.wire.events import IncidentEvent, event_json_schema
from tests.edge.test_events_schema import T0, event

ENDED = {"phase": "ended", "ended_at": "2026-11-21T08:01:00+00:00"}


@pytest.mark.parametrize("reason", ["gone", "shutdown", "source_ended", "stream_lost"])
def test_an_ended_event_carries_its_reason(reason: str) -> None:
    ev = IncidentEvent.model_validate(event(**ENDED, end_reason=reason))
    assert (ev.schema_version, ev.end_reason) == ("1.1", reason)
    assert IncidentEvent.from_json(ev.to_json()) == ev


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (ENDED, "needs end_reason"),
        ({"end_reason": "gone"}, "only set when phase is 'ended'"),
        ({**ENDED, "end_reason": "unplugged"}, "end_reason"),
        ({**ENDED, "end_reason": "gone", "schema_version": "1.0"}, "schema 1.1 field"),
    ],
)
def test_end_reason_rules(changes: dict, fragment: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=fragment):
        IncidentEvent.model_validate(event(**changes))


def test_a_1_0_gateway_ended_event_is_still_accepted() -> None:
    ev = IncidentEvent.model_validate(event(**ENDED, schema_version="1.0"))
    assert ev.end_reason is None and ev.started_at == T0


def test_the_schema_documents_the_reasons() -> None:
    prop = event_json_schema()["properties"]["end_reason"]  # type: ignore[index]
    assert "Required when phase is 'ended'" in prop["description"]
    assert set(prop["anyOf"][0]["enum"]) == {"gone", "shutdown", "source_ended", "stream_lost"}
