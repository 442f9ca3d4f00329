"""Send windows, time zones, DST, delays, pauses and expiry: pure, exhaustive, fast."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from nurture.delivery import sequencing

WINDOW = (time(8), time(20))
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class TestIntoWindow:
    def test_inside_the_window_is_unchanged(self) -> None:
        due = utc(2026, 6, 1, 12, 0)  # 13:00 in London (BST)
        assert sequencing.into_window(due, LONDON, WINDOW) == due

    def test_before_the_window_waits_for_the_morning(self) -> None:
        due = utc(2026, 6, 1, 3, 0)  # 04:00 BST
        assert sequencing.into_window(due, LONDON, WINDOW) == utc(2026, 6, 1, 7, 0)

    def test_after_the_window_waits_for_the_next_morning(self) -> None:
        due = utc(2026, 6, 1, 19, 30)  # 20:30 BST: the window is closed (end exclusive)
        assert sequencing.into_window(due, LONDON, WINDOW) == utc(2026, 6, 2, 7, 0)

    def test_end_of_window_is_exclusive(self) -> None:
        due = datetime(2026, 1, 10, 20, 0, tzinfo=LONDON)
        moved = sequencing.into_window(due, LONDON, WINDOW)
        assert moved.astimezone(LONDON) == datetime(2026, 1, 11, 8, 0, tzinfo=LONDON)

    def test_uses_the_subscribers_own_zone(self) -> None:
        due = utc(2026, 6, 1, 12, 0)  # 08:00 in New York (EDT), 22:00 in Sydney
        assert sequencing.into_window(due, NEW_YORK, WINDOW) == due
        moved = sequencing.into_window(due, SYDNEY, WINDOW)
        assert moved.astimezone(SYDNEY) == datetime(2026, 6, 2, 8, 0, tzinfo=SYDNEY)

    @pytest.mark.parametrize(
        ("zone", "day"),
        [
            (NEW_YORK, datetime(2026, 3, 8)),  # spring forward
            (NEW_YORK, datetime(2026, 11, 1)),  # fall back
            (LONDON, datetime(2026, 3, 29)),
            (LONDON, datetime(2026, 10, 25)),
        ],
    )
    def test_dst_days_open_at_eight_local(self, zone: ZoneInfo, day: datetime) -> None:
        # Every hour of the DST day, and of the evening before, lands on a local 08:00-20:00.
        start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(hours=6)
        for hour in range(36):
            due = (start + timedelta(hours=hour)).astimezone(UTC)
            moved = sequencing.into_window(due, zone, WINDOW)
            local = moved.astimezone(zone)
            assert moved >= due
            assert time(8) <= local.time() < time(20), (due, local)
            if not sequencing.in_window(due, zone, WINDOW):
                assert local.time() == time(8)

    def test_window_start_inside_a_dst_gap_is_never_early(self) -> None:
        # 02:30 does not exist in New York on 2026-03-08.
        window = (time(2, 30), time(20))
        due = utc(2026, 3, 8, 6, 0)  # 01:00 EST
        moved = sequencing.into_window(due, NEW_YORK, window)
        assert moved > due
        assert sequencing.in_window(moved, NEW_YORK, window)

    def test_random_instants_always_land_inside(self) -> None:
        rng = random.Random(7)
        zones = [LONDON, NEW_YORK, SYDNEY, ZoneInfo("Asia/Kolkata"), ZoneInfo("Pacific/Chatham")]
        for _ in range(2000):
            due = utc(2026, 1, 1) + timedelta(minutes=rng.randrange(0, 525_600))
            zone = rng.choice(zones)
            moved = sequencing.into_window(due, zone, WINDOW)
            assert moved >= due
            assert moved - due < timedelta(hours=13)
            assert sequencing.in_window(moved, zone, WINDOW)


class TestSendTime:
    def test_pause_wins_over_due(self) -> None:
        due = utc(2026, 6, 1, 12)
        paused = utc(2026, 7, 1, 2)  # 03:00 BST: after the pause, still inside the window
        assert sequencing.send_time(due, zone=LONDON, window=WINDOW, paused_until=paused) == utc(
            2026, 7, 1, 7
        )

    def test_past_pause_changes_nothing(self) -> None:
        due = utc(2026, 6, 1, 12)
        assert (
            sequencing.send_time(
                due, zone=LONDON, window=WINDOW, paused_until=due - timedelta(days=1)
            )
            == due
        )


class TestDelays:
    def test_next_step_is_due_delay_after_the_previous_send(self) -> None:
        delays = [timedelta(0), timedelta(days=2), timedelta(days=3)]
        sent = utc(2026, 6, 1, 9, 41)
        assert sequencing.next_step_due(sent, delays, 1) == utc(2026, 6, 3, 9, 41)
        assert sequencing.next_step_due(sent, delays, 2) == utc(2026, 6, 4, 9, 41)

    def test_finished_sequence_has_no_next_step(self) -> None:
        assert sequencing.next_step_due(utc(2026, 6, 1), [timedelta(0)], 1) is None


class TestNewsletterOpen:
    def test_open_from_send_at_until_not_after(self) -> None:
        send_at, not_after = utc(2026, 12, 8, 9), utc(2026, 12, 10, 20)
        assert not sequencing.newsletter_open(send_at - timedelta(seconds=1), send_at, not_after)
        assert sequencing.newsletter_open(send_at, send_at, not_after)
        assert not sequencing.newsletter_open(not_after, send_at, not_after)
        assert sequencing.newsletter_open(utc(2030, 1, 1), send_at, None)


class TestZones:
    def test_unknown_zone_falls_back_to_the_practice(self) -> None:
        assert sequencing.zone_for("Mars/Olympus", LONDON) is LONDON
        assert sequencing.zone_for(None, LONDON) is LONDON
        assert sequencing.zone_for("America/New_York", LONDON) == NEW_YORK


class TestRetryDelay:
    def test_grows_exponentially_with_jitter_and_a_cap(self) -> None:
        rng = random.Random(1)
        delays = [sequencing.retry_delay(a, base=30, rng=rng) for a in range(1, 12)]
        assert 15 <= delays[0] <= 30
        assert 60 <= delays[2] <= 120
        assert all(d <= 3600 for d in delays)
        assert delays[-1] >= 1800
