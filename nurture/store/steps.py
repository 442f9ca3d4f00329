"""The small integer that names a (campaign, step) in the outbox's unique key.

``outbox_steps`` gives each (campaign, step) planned an id once; the outbox keeps both
names for everything that reads it, and the id for its unique key alone. That key is
written at every insert and, on PostgreSQL, at every "sending" mark (not a HOT update):
with the id instead of both strings, that mark for 1M rows took 13.5 s instead of 16.0
(``benchmarks.bookkeeping``).

Ids are read afresh in each transaction, never cached in the process: a database
restored from a backup, or emptied by a test, may give an id another meaning, and a
cached id would then make a new step look like one already sent.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select

from nurture.store.schema import outbox_steps
from nurture.store.upsert import insert_ignore

Step = tuple[str, str]  # (campaign, step)


def id_of(conn: Connection, campaign: str, step: str) -> int:
    """The id of ``(campaign, step)``, given to it now if it has none yet."""
    return ids_of(conn, [(campaign, step)])[(campaign, step)]


def ids_of(conn: Connection, steps: Iterable[Step]) -> dict[Step, int]:
    """The id of each (campaign, step), in the caller's transaction; new ones get one.

    Two transactions adding the same step at once both get its one id: the insert
    skips a conflict (on PostgreSQL it waits for the other to commit first), and the
    read after it sees the committed row.
    """
    wanted = set(steps)
    found = _read(conn, wanted)
    missing = wanted - found.keys()
    if missing:
        rows = [{"campaign": c, "step": s} for c, s in sorted(missing)]
        conn.execute(insert_ignore(conn, outbox_steps), rows)
        found.update(_read(conn, missing))
    return found


def _read(conn: Connection, steps: set[Step]) -> dict[Step, int]:
    found = {}
    for campaign, step in steps:  # a handful at most: one per step planned in a batch
        step_id = conn.execute(_by_name(), {"c": campaign, "s": step}).scalar()
        if step_id is not None:
            found[(campaign, step)] = int(step_id)
    return found


@functools.cache
def _by_name() -> Any:
    # Built once: a sign-up reads one id, and building a statement costs more than
    # SQLite takes to run it.
    return select(outbox_steps.c.id).where(
        and_(
            outbox_steps.c.campaign == bindparam("c", type_=outbox_steps.c.campaign.type),
            outbox_steps.c.step == bindparam("s", type_=outbox_steps.c.step.type),
        )
    )
