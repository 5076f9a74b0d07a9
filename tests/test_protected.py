"""The protected marks and policy spelling shared by the operator and the provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from csi_vso import protected


def test_labels_carry_the_selector_the_provider_watches() -> None:
    labels = protected.protected_labels("uid-1")
    assert labels == {
        "app.kubernetes.io/managed-by": "csi-vso",
        "csi-vso.io/protected": "true",
        "csi-vso.io/owner-uid": "uid-1",
    }
    key, value = protected.PROTECTED_SELECTOR.split("=")
    assert labels[key] == value
    assert protected.is_protected(labels)


@pytest.mark.parametrize(
    "labels",
    [None, {}, {"csi-vso.io/protected": "True"}, {"csi-vso.io/protected": "false"}, {"other": "true"}],
)
def test_is_protected_needs_the_exact_label(labels: dict[str, str] | None) -> None:
    assert not protected.is_protected(labels)


@pytest.mark.parametrize("values", [[], ["*"], ["team-a", "team-b"], ["ns/sa", "sa"]])
def test_policy_lists_round_trip(values: list[str]) -> None:
    assert protected.decode_list(protected.encode_list(values)) == values


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("team-a,team-b", "not a JSON list"),
        ('{"a": 1}', "not a JSON list of strings"),
        ("[1, 2]", "not a JSON list of strings"),
        ('"team-a"', "not a JSON list of strings"),
    ],
)
def test_decode_list_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        protected.decode_list(text)


def test_written_at_keeps_microseconds_in_utc() -> None:
    when = datetime(2026, 11, 27, 23, 50, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    text = protected.format_written_at(when)
    assert text == "2026-11-27T21:50:01.123456Z"
    assert protected.parse_written_at(text) == when
    assert protected.parse_written_at("2026-11-27T21:50:01.5+00:00") == datetime(
        2026, 11, 27, 21, 50, 1, 500000, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["yesterday", "2026-11-27T21:50:01"])
def test_parse_written_at_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        protected.parse_written_at(text)


def test_format_written_at_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="aware"):
        protected.format_written_at(datetime(2026, 1, 1))
