"""Link counts (``LINK_COUNTS``): one row per link of a step per day, never per person."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from nurture.store.schema import link_clicks


def count_click(
    conn: Connection, *, campaign: str, step: str, link: str, target: str, day: date
) -> None:
    """Adds one click to the link's count for ``day`` (an upsert: safe under concurrency)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(link_clicks).values(
        campaign=campaign, step=step, link=link, day=day, target=target[:2000], clicks=1
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign", "step", "link", "day"],
            set_={"clicks": link_clicks.c.clicks + 1},
        )
    )


def clicks_per_step(conn: Connection) -> dict[tuple[str, str], int]:
    """Every click ever counted, by (campaign, step)."""
    query = select(link_clicks.c.campaign, link_clicks.c.step, func.sum(link_clicks.c.clicks))
    query = query.group_by(link_clicks.c.campaign, link_clicks.c.step)
    return {(c, s): int(n) for c, s, n in conn.execute(query)}


def clicks_per_link(conn: Connection, campaign: str, step: str) -> dict[str, int]:
    """One step's clicks by link target, most clicked first."""
    query = (
        select(link_clicks.c.target, func.sum(link_clicks.c.clicks).label("n"))
        .where(link_clicks.c.campaign == campaign, link_clicks.c.step == step)
        .group_by(link_clicks.c.target)
        .order_by(func.sum(link_clicks.c.clicks).desc())
    )
    return {target: int(n) for target, n in conn.execute(query)}
