"""Category table, roster and workflow: data files load, bad data is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gridwatch.central import workflow
from gridwatch.central.categories import load_categories
from gridwatch.central.roster import load_roster

EXPECTED = {
    "illegal_parking": ("09009", "机动车乱停放"),
    "street_vendor": ("09006", "占道经营"),
    "littering": ("06010", "暴露垃圾"),
    "exposed_garbage": ("06010", "暴露垃圾"),
    "fallen_wire": ("10002", "架空线缆脱落"),
    "overflowing_bin": ("06042", "垃圾满溢"),
}


def test_shipped_categories_cover_every_incident_type() -> None:
    from gridwatch.wire.events import INCIDENT_TYPES

    table = load_categories()
    assert table.version
    assert {t: (c.code, c.name) for t, c in table.categories.items()} == EXPECTED
    assert set(INCIDENT_TYPES) == set(table.categories)


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("version: v1\ncategories:\n  littering: {code: 6010, name: x}\n", "code"),
        ('version: v1\ncategories:\n  littering: {code: "6010", name: x}\n', "pattern"),
        ('version: v1\ncategories:\n  littering: {code: "06010", name: x, autofile: true}\n', "autofile"),
        ("categories: {}\n", "version"),
        ("version: v1\ncategories: {}\ncolour: red\n", "colour"),
    ],
    ids=["unquoted-code", "four-digits", "typo-in-setting", "no-version", "unknown-key"],
)
def test_bad_category_table_is_refused(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    path = tmp_path / "categories.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ValidationError, match=fragment):
        load_categories(path)


@pytest.mark.parametrize(
    ("yaml_text", "cell", "cleaner"),
    [
        ('default_cleaner: desk\ncells: {"370203001001": wang}\n', "370203001001", "wang"),
        ('default_cleaner: desk\ncells: {"370203001001": wang}\n', "370203001009", "desk"),
        ('cells: {"370203001001": wang}\n', None, "dispatch-desk"),
        ("", "370203001001", "dispatch-desk"),
    ],
    ids=["listed", "unlisted", "no-cell-default", "empty-file"],
)
def test_roster_lookup(tmp_path: Path, yaml_text: str, cell: str | None, cleaner: str) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text(yaml_text)
    assert load_roster(path).cleaner_for(cell) == cleaner


@pytest.mark.parametrize(
    "yaml_text",
    [
        'cells: {"370203001001": "wang/#"}\n',  # not a topic level
        'cells: {"grid-1": wang}\n',  # not a grid code
        "default_cleaner: desk\nteams: {}\n",  # unknown key
    ],
    ids=["cleaner-not-topic-safe", "bad-grid-code", "unknown-key"],
)
def test_bad_roster_is_refused(tmp_path: Path, yaml_text: str) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ValidationError):
        load_roster(path)


@pytest.mark.parametrize(
    ("current", "trigger", "expected"),
    [
        (None, "intake", "reported"),
        ("reported", "auto_file", "filed"),
        ("reported", "ended", "resolved_on_camera"),
        ("filed", "ended", "resolved_on_camera"),
        ("resolved_on_camera", "ended", None),
        ("filed", "auto_file", None),
        ("reported", "no-such-trigger", None),
    ],
)
def test_workflow_transitions(current: str | None, trigger: str, expected: str | None) -> None:
    assert workflow.next_status(current, trigger) == expected
    assert expected is None or expected in workflow.STATUSES
