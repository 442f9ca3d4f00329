"""Seeds a database with a realistic practice: about 2,000 subscribers, three months of
sign-ups (the last month in full), both sequences under way, a newsletter, link
clicks, a little trouble in the queue. For looking at the studio's dashboard.

    .venv/bin/python -m benchmarks.seed_practice var/seeded.db
    NURTURE_DATABASE_URL=sqlite:///var/seeded.db .venv/bin/nurture serve --no-scheduler

Addresses are ``reader<N>@example.org``; nothing here is anyone's data.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from nurture.campaigns import load_catalogue
from nurture.settings import load_settings
from nurture.store import database
from nurture.store import steps as step_ids
from nurture.store.schema import (
    consents,
    enrolments,
    link_clicks,
    newsletter_runs,
    outbox,
    subscribers,
)

NOW = datetime.now(UTC).replace(microsecond=0)
#: A newsletter that went out nine days ago (the shipped one may still lie ahead).
LETTER_AT = (NOW - timedelta(days=9)).replace(hour=9, minute=0, second=0)
LETTER = f"{LETTER_AT:%Y-%m-%d}-autumn-note"
STEP_DAYS = 3  # roughly the shipped delays
SHARE = {"what-i-actually-do": 0.6, "beginning-therapy": 0.4}


def seed(
    engine: Engine, steps: dict[str, list[str]], *, people: int = 2000, now: datetime = NOW
) -> None:
    """Inserts ``people`` subscribers with their consents, enrolments, mail and clicks."""
    rng = random.Random(10)
    rows: dict[str, list[dict[str, Any]]] = {"s": [], "c": [], "e": [], "o": []}
    clicks: dict[tuple[str, str, str, Any], int] = {}
    for i in range(people):
        _person(i, rng, steps, now, rows, clicks)
    _letter(rows, rng, clicks)
    _queue(rows, now)
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows["o"]:  # one row per (subscriber, step), as the outbox insists
        key = (row["subscriber_id"], row["campaign"], row["step"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    rows["o"] = unique
    with engine.begin() as conn:
        conn.execute(insert(subscribers), rows["s"])
        conn.execute(insert(consents), rows["c"])
        conn.execute(insert(enrolments), rows["e"])
        ids = step_ids.ids_of(conn, {(row["campaign"], row["step"]) for row in rows["o"]})
        for row in rows["o"]:
            row["step_id"] = ids[(row["campaign"], row["step"])]
        conn.execute(insert(outbox), rows["o"])
        conn.execute(
            insert(newsletter_runs),
            [{"slug": LETTER, "planned_at": LETTER_AT, "recipients": 0, "cursor": 0, "done": True}],
        )
        conn.execute(
            insert(link_clicks),
            [
                {
                    "campaign": c,
                    "step": s,
                    "link": k,
                    "day": d,
                    "target": f"https://example.com/{k}",
                    "clicks": n,
                }
                for (c, s, k, d), n in clicks.items()
            ],
        )


def _person(
    i: int,
    rng: random.Random,
    steps: dict[str, list[str]],
    now: datetime,
    rows: dict[str, list[dict[str, Any]]],
    clicks: dict[tuple[str, str, str, Any], int],
) -> None:
    # Most readers arrived before this month; sign-ups pick up in the last weeks.
    days_ago = rng.uniform(0, 30) if rng.random() < 0.28 else rng.uniform(30, 84)
    created = now - timedelta(days=days_ago)
    campaign = (
        "what-i-actually-do" if rng.random() < SHARE["what-i-actually-do"] else "beginning-therapy"
    )
    sid = i + 1
    confirmed = created + timedelta(hours=rng.uniform(0.1, 30)) if rng.random() < 0.93 else None
    if confirmed and confirmed > now:
        confirmed = None
    leaves = confirmed is not None and rng.random() < 0.11
    person = {
        "id": sid,
        "public_id": f"seed{i:06d}",
        "email": f"reader{i}@example.org",
        "first_name": None,
        "status": "confirmed" if confirmed else "pending",
        "newsletters": True,
        "source_campaign": campaign,
        "created_at": created,
        "confirmed_at": confirmed,
        "confirmation_sent_at": created,
    }
    rows["s"].append(person)
    rows["c"].append(_consent(sid, "opt_in", created, campaign))
    if confirmed is None:
        return
    rows["c"].append(_consent(sid, "confirm", confirmed, campaign))
    names = steps[campaign]
    due = min(len(names), 1 + int((now - confirmed).days // STEP_DAYS))
    received = due
    if leaves:
        received = max(1, min(due, int(rng.expovariate(1 / 2.2)) + 1))
    for k in range(received):
        sent_at = confirmed + timedelta(days=k * STEP_DAYS, minutes=rng.uniform(1, 600))
        sent_at = min(sent_at, now - timedelta(minutes=5))
        rows["o"].append(_mail(sid, campaign, names[k], sent_at))
        if rng.random() < 0.07 + (0.05 if k == len(names) - 1 else 0):
            key = (campaign, names[k], "a" if rng.random() < 0.7 else "b", sent_at.date())
            clicks[key] = clicks.get(key, 0) + 1
    status = "completed" if received == len(names) else "active"
    if leaves:
        left_at = min(
            now - timedelta(minutes=1),
            confirmed + timedelta(days=(received - 1) * STEP_DAYS + rng.uniform(0.1, 2.5)),
        )
        person.update(status="unsubscribed", unsubscribed_at=left_at)
        rows["c"].append(_consent(sid, "withdraw", left_at, None))
        status = "stopped"
    rows["e"].append(
        {
            "subscriber_id": sid,
            "campaign": campaign,
            "status": status,
            "next_step": received,
            "next_due_at": None if status != "active" else now + timedelta(days=1),
            "enrolled_at": confirmed,
            "updated_at": now,
        }
    )


def _letter(
    rows: dict[str, list[dict[str, Any]]], rng: random.Random, clicks: dict[Any, int]
) -> None:
    for person in rows["s"]:
        confirmed = person["confirmed_at"]
        gone = person.get("unsubscribed_at")
        if confirmed and confirmed < LETTER_AT and (gone is None or gone > LETTER_AT):
            at = LETTER_AT + timedelta(minutes=rng.uniform(0, 600))
            rows["o"].append(_mail(person["id"], "newsletters", LETTER, at, kind="newsletter"))
            if rng.random() < 0.045:
                key = ("newsletters", LETTER, "a", at.date())
                clicks[key] = clicks.get(key, 0) + 1


def _queue(rows: dict[str, list[dict[str, Any]]], now: datetime) -> None:
    """A little of everything the queue shows: due, scheduled, failed, unknown."""
    trouble = [
        ("queued", now - timedelta(minutes=2), None),
        ("queued", now - timedelta(minutes=1), None),
        (
            "failed",
            now - timedelta(days=3),
            "550 5.1.1 <reader17@example.org>: mailbox unavailable",
        ),
        (
            "failed",
            now - timedelta(days=9),
            "550 5.1.1 <reader99@example.org>: mailbox unavailable",
        ),
        ("failed", now - timedelta(days=5), "552 5.2.2 mailbox full"),
        ("unknown", now - timedelta(hours=1), None),
    ]
    for n, (status, at, error) in enumerate(trouble):
        row = _mail(1900 + n, "beginning-therapy", "07-working-together", at)
        row.update(status=status, error=error, sent_at=None, due_at=at)
        rows["o"].insert(0, row)
    for n in range(40):
        row = _mail(1800 + n, "what-i-actually-do", "10-an-open-door", now + timedelta(hours=n))
        row.update(status="queued", sent_at=None)
        rows["o"].insert(0, row)


def _mail(
    sid: int, campaign: str, step: str, at: datetime, *, kind: str = "sequence"
) -> dict[str, Any]:
    return {
        "subscriber_id": sid,
        "kind": kind,
        "campaign": campaign,
        "step": step,
        "due_at": at,
        "status": "sent",
        "error": None,
        "attempts": 1,
        "created_at": at,
        "updated_at": at,
        "sent_at": at,
    }


def _consent(sid: int, action: str, at: datetime, campaign: str | None) -> dict[str, Any]:
    return {
        "subscriber_id": sid,
        "action": action,
        "channel": "form",
        "campaign": campaign,
        "created_at": at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="the SQLite file to create")
    parser.add_argument("--people", type=int, default=2000)
    args = parser.parse_args()
    if args.path.exists():
        raise SystemExit(f"{args.path} exists; choose a new file")
    url = f"sqlite:///{args.path}"
    database.upgrade(url)
    catalogue = load_catalogue(load_settings())
    steps = {slug: [s.slug for s in c.steps] for slug, c in catalogue.campaigns.items()}
    seed(database.make_engine(url), steps, people=args.people)
    print(f"seeded {args.people} subscribers into {args.path}")


if __name__ == "__main__":
    main()
