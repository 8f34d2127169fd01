"""State snapshots and diffs, and the JSON document of STATE_DIFF.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from capture_helpers import raise_internal_errors  # noqa: F401

from execscope.capture import CaptureLimits, NoopRedactor, StateDiff, diff, diff_values, snapshot

PLAIN = NoopRedactor()


class Cart:
    def __init__(self) -> None:
        self.count = 0
        self.items: list[str] = []
        self.coupon: str | None = None


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 1


class Mixed(Slotted):
    def __init__(self) -> None:
        super().__init__()
        self.c = [1]


# --------------------------------------------------------------------------- snapshots


def test_a_snapshot_renders_each_field() -> None:
    assert snapshot(Cart()) == {"count": "0", "items": "[]", "coupon": "None"}
    assert snapshot(Slotted()) == {"a": "1"}  # an unset slot is not a field yet
    assert snapshot(Mixed()) == {"c": "[1]", "a": "1"}


def test_a_snapshot_is_immune_to_later_in_place_mutation() -> None:
    cart = Cart()
    before = snapshot(cart)
    cart.items.append("apple")
    assert before["items"] == "[]"
    assert diff(before, snapshot(cart)).changed == {"items": ("[]", "['apple']")}


def test_a_snapshot_keeps_at_most_max_state_fields() -> None:
    state = {f"k{i}": i for i in range(5)}
    assert snapshot(state, CaptureLimits(max_state_fields=2)) == {"k0": "0", "k1": "1", "…": "+3 more fields"}


def test_dicts_are_snapshotted_by_key_and_other_values_whole() -> None:
    assert snapshot({"a": 1, 2: "b", b"k": None}) == {"a": "1", "2": "'b'", "b'k'": "None"}
    assert snapshot(5) == {"<value>": "5"}
    assert snapshot([1, 2]) == {"<value>": "[1, 2]"}


def test_field_renderings_are_bounded_by_the_limits() -> None:
    cart = Cart()
    cart.items = ["x"] * 50
    assert snapshot(cart, CaptureLimits(max_items=2))["items"] == "['x', 'x', …+48 more]"


# --------------------------------------------------------------------------- diffs


def test_diff_reports_added_removed_and_changed_fields() -> None:
    cart = Cart()
    cart.old = True  # type: ignore[attr-defined]
    before = snapshot(cart)
    cart.count += 1
    cart.items.append("apple")
    cart.label = "x"  # type: ignore[attr-defined]
    del cart.old  # type: ignore[attr-defined]
    change = diff(before, snapshot(cart))
    assert change == StateDiff(
        added={"label": "'x'"},
        removed={"old": "True"},
        changed={"count": ("0", "1"), "items": ("[]", "['apple']")},
    )
    assert change


def test_no_change_is_an_empty_falsy_diff() -> None:
    cart = Cart()
    change = diff(snapshot(cart), snapshot(cart))
    assert not change
    assert change.to_json() == '{"v":1}'


def test_diff_values_for_reducers_over_dicts_objects_and_scalars() -> None:
    assert diff_values({"n": 0, "gone": 1}, {"n": 1, "new": 2}) == StateDiff(
        added={"new": "2"}, removed={"gone": "1"}, changed={"n": ("0", "1")}
    )
    old, new = Cart(), Cart()
    new.count = 3
    assert diff_values(old, new).changed == {"count": ("0", "3")}
    assert diff_values(1, 2).changed == {"<value>": ("1", "2")}
    assert diff_values({"token": "a"}, {"token": "b"}) == StateDiff()  # redacted both times


# --------------------------------------------------------------------------- the JSON document


def test_to_json_is_the_documented_compact_versioned_format() -> None:
    change = StateDiff(
        added={"z": "'x'", "label": "'é'"},
        removed={"old": "True"},
        changed={"items": ("[]", "['apple']"), "count": ("0", "1")},
    )
    assert change.to_json() == (
        '{"v":1,"changed":{"count":["0","1"],"items":["[]","[\'apple\']"]},'
        '"added":{"label":"\'é\'","z":"\'x\'"},"removed":{"old":"True"}}'
    )


def test_empty_sections_are_omitted() -> None:
    assert StateDiff(changed={"count": ("0", "1")}).to_json() == '{"v":1,"changed":{"count":["0","1"]}}'


def test_too_long_values_are_shortened_first() -> None:
    text = StateDiff(changed={"blob": ("a" * 1500, "b" * 1500)}).to_json()
    assert len(text.encode()) <= 2000
    assert json.loads(text) == {"v": 1, "changed": {"blob": ["a" * 256 + "…", "b" * 256 + "…"]}}


def test_too_many_entries_are_dropped_and_counted() -> None:
    change = StateDiff(added={f"f{i:03}": "x" * 20 for i in range(200)})
    text = change.to_json()
    document = json.loads(text)
    assert len(text.encode()) <= 2000
    kept = document["added"]
    assert document["truncated"] == 200 - len(kept)
    assert len(kept) > 40
    assert list(kept) == [f"f{i:03}" for i in range(len(kept))]  # the first keys, in order
    assert all(value == "x" * 16 + "…" for value in kept.values())


def test_the_size_cap_counts_utf8_bytes_and_is_configurable() -> None:
    change = StateDiff(added={f"k{i}": "é" * 30 for i in range(100)})
    for cap in (100, 500, 2000, 5000):
        assert len(change.to_json(cap).encode()) <= cap


def test_the_smallest_document_still_counts_what_was_dropped() -> None:
    document = json.loads(StateDiff(added={"a" * 100: "1"}).to_json(64))
    assert document == {"v": 1, "truncated": 1}


@pytest.mark.parametrize("max_size", [64, 200, 2000])
def test_a_snapshot_diff_of_a_big_object_fits(max_size: int) -> None:
    before = {f"field_{i}": "v" * 100 for i in range(100)}
    after = {f"field_{i}": "w" * 100 for i in range(100)}
    text = diff_values(before, after, redactor=PLAIN).to_json(max_size)
    assert len(text.encode()) <= max_size
    assert json.loads(text)["v"] == 1


def test_the_format_is_documented_next_to_the_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "distro" / "capture" / "STATE_DIFF.md").read_text()
    assert '"v":1' in doc
    for word in ("changed", "added", "removed", "truncated"):
        assert f'"{word}"' in doc
