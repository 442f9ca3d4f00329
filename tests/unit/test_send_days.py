"""``send_days``: parsing the therapist's words, and the next allowed instant in the
reader's own zone, across a DST change."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from nurture.campaigns.days import describe, parse_send_days
from nurture.delivery.sequencing import in_window, into_window, send_time

WINDOW = (time(8, 0), time(20, 0))
WEEKDAYS = frozenset(range(5))
LONDON = ZoneInfo("Europe/London")
AUCKLAND = ZoneInfo("Pacific/Auckland")


@pytest.mark.parametrize(
    ("written", "days"),
    [
        ("weekdays", {0, 1, 2, 3, 4}),
        ("weekends", {5, 6}),
        ("every day", set(range(7))),
        ("mon-thu", {0, 1, 2, 3}),
        ("fri-mon", {4, 5, 6, 0}),
        (["mon", "Wednesday", "fri"], {0, 2, 4}),
        ("tue, thu", {1, 3}),
        ("sat", {5}),
    ],
)
def test_the_therapists_words_are_read(written: object, days: set[int]) -> None:
    assert parse_send_days(written) == frozenset(days)


@pytest.mark.parametrize("written", ["someday", ["mon", "funday"], 3, [], "mo-xx"])
def test_unknown_days_are_refused_with_a_message(written: object) -> None:
    with pytest.raises(ValueError, match=r"day|send_days"):
        parse_send_days(written)


def test_described_in_plain_words() -> None:
    assert describe(None) == "every day"
    assert describe(WEEKDAYS) == "weekdays"
    assert describe(frozenset({0, 2})) == "mon, wed"


def test_a_saturday_due_time_moves_to_monday_morning_local() -> None:
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)  # Saturday in London
    assert into_window(saturday, LONDON, WINDOW, WEEKDAYS) == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_friday_evening_after_the_window_moves_to_monday() -> None:
    friday_late = datetime(2026, 3, 6, 21, 0, tzinfo=UTC)
    assert into_window(friday_late, LONDON, WINDOW, WEEKDAYS) == datetime(
        2026, 3, 9, 8, 0, tzinfo=UTC
    )


def test_the_readers_own_calendar_day_decides() -> None:
    # Sunday 20:00 UTC is already Monday 09:00 in Auckland: a weekday there.
    moment = datetime(2026, 3, 8, 20, 0, tzinfo=UTC)
    assert in_window(moment, AUCKLAND, WINDOW, WEEKDAYS)
    assert not in_window(moment, LONDON, WINDOW, WEEKDAYS)


def test_across_the_spring_change_the_local_opening_time_holds() -> None:
    # London moves to BST on Sunday 29 March 2026: Monday 08:00 local is 07:00 UTC.
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    monday = into_window(saturday, LONDON, WINDOW, WEEKDAYS)
    assert monday == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert monday.astimezone(LONDON).hour == 8


def test_across_the_autumn_change_too() -> None:
    # GMT again from Sunday 25 October 2026: Monday 08:00 local is 08:00 UTC.
    saturday = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert into_window(saturday, LONDON, WINDOW, WEEKDAYS) == datetime(
        2026, 10, 26, 8, 0, tzinfo=UTC
    )


def test_a_pause_and_send_days_together() -> None:
    due = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday
    paused_until = datetime(2026, 3, 6, 21, 0, tzinfo=UTC)  # Friday night
    at = send_time(due, zone=LONDON, window=WINDOW, paused_until=paused_until, days=WEEKDAYS)
    assert at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_without_send_days_every_day_goes() -> None:
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert into_window(saturday, LONDON, WINDOW) == saturday
