"""Hypothesis strategies for hostile MQTT payloads at central (issue 8), shared by the in-process fuzz test
(tests/central/test_ingest_fuzz.py) and the through-the-broker run of the chaos benchmark (chaos_attack.py).

Payloads: random bytes, random JSON, valid events with fields (also nested ones) replaced by absurd values
(wrong types, huge or NaN/infinite numbers, control characters, impossible dates), added or removed, and valid
events of a few incidents at random seqs (so the case logic is reached too). Topics: the valid one, random text,
extra levels, wildcards (for the in-process handler), or (`broker_topics`) publishable topics of the incident
shape whose site/gateway/camera levels are random (a broker refuses wildcards, so these are what reach central).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

absurd = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300), st.binary(max_size=50).map(repr),
    st.lists(st.integers(), max_size=5), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just("\x00"), st.just("9" * 400), st.just("2026-13-45T99:99:99Z"),
)


@st.composite
def mutated_event(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """A valid event with some fields (also nested ones) replaced, added or removed."""
    event = json.loads(json.dumps(valid))
    event["event_id"] = str(draw(st.uuids()))
    for _ in range(draw(st.integers(1, 4))):
        target = event
        key = draw(st.sampled_from(sorted(event)))
        if isinstance(event[key], dict) and draw(st.booleans()):
            target, key = event[key], draw(st.sampled_from(sorted(event[key]) or ["x"]))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            target[key] = draw(absurd)
        elif action == "drop":
            target.pop(key, None)
        else:
            target[draw(st.text(min_size=1, max_size=8))] = draw(absurd)
    return json.dumps(event, allow_nan=True).encode()


@st.composite
def valid_event(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """A valid event of one of a few incidents, at a random seq: creates, updates, stale and duplicate notes."""
    event = json.loads(json.dumps(valid))
    event["event_id"] = str(draw(st.uuids()))
    event["incident_id"] = f"inc-fuzz-{draw(st.integers(0, 3)):06d}"
    event["seq"] = draw(st.integers(0, 12))
    return json.dumps(event).encode()


def random_json() -> st.SearchStrategy[bytes]:
    return st.recursive(st.none() | st.integers() | st.text(max_size=20),
                        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids,
                                                                                  max_size=4),
                        max_leaves=30).map(lambda v: json.dumps(v).encode())


def payloads(valid: dict[str, Any], with_valid: bool = True) -> st.SearchStrategy[bytes]:
    """Every kind of payload; `with_valid=False` leaves out the valid events (every payload is then hostile)."""
    kinds = [st.binary(max_size=2000), mutated_event(valid)]
    kinds += [valid_event(valid)] if with_valid else []
    return st.one_of(*kinds, random_json())


def topics(valid_topic: str) -> st.SearchStrategy[str]:
    """Topics of every shape, for the handler called in-process (a broker refuses some of them)."""
    return st.one_of(st.just(valid_topic), st.text(max_size=600),
                     st.just(valid_topic + "/extra"), st.just("gridwatch/v1/+/#"))


# Mosquitto drops the connection of a client whose topic holds a control character or a Unicode noncharacter
# (U+FDD0..U+FDEF, U+xFFFE/U+xFFFF: category Cn here), so such a topic can never reach central.
_LEVEL = st.text(st.characters(exclude_characters="/+#", exclude_categories=("Cs", "Cc", "Cn")), min_size=1,
                 max_size=40)


def broker_topics(prefix: str, site: str, gateway: str, camera: str) -> st.SearchStrategy[str]:
    """Publishable incident or evidence topics that central's subscription matches: the valid levels or random
    ones (each level may be random, so a payload may disagree with its topic)."""
    def level(valid: str) -> st.SearchStrategy[str]:
        return st.one_of(st.just(valid), _LEVEL)
    return st.builds(lambda s, g, c, kind: f"{prefix}/{s}/{g}/{c}/{kind}", level(site), level(gateway), level(camera),
                     st.sampled_from(["incident"] * 4 + ["evidence"]))
