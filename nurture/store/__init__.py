"""Storage: the schema, the engine, migrations and the named operations on them.

Everything above this package talks to the database through the functions in
``subscribers``, ``outbox``, ``suppressions`` and ``events``; SQL does not leak upward.
"""
