"""Goal counts: how many readers reached a goal after how many steps, never who."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from nurture.store.schema import goal_counts


def count_goal(conn: Connection, *, campaign: str, goal: str, after_step: int, day: date) -> None:
    """Adds one reader to the count of ``goal`` after ``after_step`` steps on ``day``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(goal_counts).values(
        campaign=campaign, goal=goal, after_step=after_step, day=day, count=1
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign", "goal", "after_step", "day"],
            set_={"count": goal_counts.c.count + 1},
        )
    )


def goals_after_step(conn: Connection, goal: str) -> dict[str, dict[int, int]]:
    """Every count of ``goal``: campaign -> steps received before it -> readers."""
    query = (
        select(goal_counts.c.campaign, goal_counts.c.after_step, func.sum(goal_counts.c.count))
        .where(goal_counts.c.goal == goal)
        .group_by(goal_counts.c.campaign, goal_counts.c.after_step)
    )
    counts: dict[str, dict[int, int]] = {}
    for campaign, after_step, total in conn.execute(query):
        counts.setdefault(campaign, {})[int(after_step)] = int(total)
    return counts
