"""Storage: the schema, the engine, migrations and the named operations on them.

This package alone writes SQL. Everything above it (delivery, subscriptions, the
runtime, the CLI and the web) calls the named functions below, each taking a
connection inside the caller's transaction:

- ``database``: engines (SQLite in WAL mode, PostgreSQL), read-only connections,
  the health ping, migrations (``migrations/``, Alembic);
- ``schema``: the tables; ``statuses``: the enums stored in ``status`` and ``kind``
  columns; ``upsert``: insert-or-skip for both backends;
- ``subscribers``: the subscriber rows; ``enrolments``: every enrolment write (what is
  due to plan, moving on after a send, one subscriber's enrolments);
- ``outbox``: the queue (planned rows, taking, marking, leases, unknown outcomes);
  ``subscriber_outbox``: one subscriber's rows (confirmation, cancel, move, history);
  ``steps``: the small integer naming a campaign step in the outbox's unique key;
  ``planning``: newsletter planning's INSERT ... SELECT and its ``newsletter_runs``;
  ``confirmations``: confirmation emails as a whole (counts, the details each carried);
- ``consents``, ``suppressions``, ``webhook_events``, ``job_runs``: one table each;
- ``stats``: read-only counts for ``nurture stats`` and the metrics.
"""
