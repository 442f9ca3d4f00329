"""Set-based inserts of a batch of rows: one statement and a handful of parameters.

A thousand rows through SQLAlchemy's ``executemany`` become one ``VALUES`` list of
thousands of parameters, which psycopg parses afresh every time (its query cache only
keeps short queries) and SQLAlchemy converts value by value. Here the rows travel as
one parameter per column: arrays read by ``unnest`` on PostgreSQL, one JSON array read
by ``json_each`` on SQLite. Values are converted by the columns' own types first, so
what is stored is exactly what a Core insert would store.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    String,
    Table,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from nurture.store.schema import UTCDateTime, naive_utc


def insert_ignore_returning(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    constants: Mapping[str, Any],
    returning: Sequence[str],
    *,
    conflicts_rare: bool = False,
) -> list[Any]:
    """Inserts ``rows`` (``columns`` from each row, ``constants`` the same for all),
    skipping any that violates a unique constraint; returns the ``returning`` columns
    of the rows really inserted.

    ``conflicts_rare``: on PostgreSQL, try a plain INSERT first, in a savepoint, and
    skip conflicts only when it meets one. ON CONFLICT's speculative insertion cost
    PostgreSQL 50-140% more per row (1,000 planned steps: 5.4 against 8.3-13 ms). A
    conflict costs the attempt (dead rows for VACUUM, ids skipped) and a "duplicate key"
    ERROR line in PostgreSQL's own log, which is harmless. When the attempt succeeds,
    every row went in, and the ``returning`` values are read from ``rows`` as given
    (they must be among ``columns``), not sent back by PostgreSQL.
    """
    if conflicts_rare and not set(returning) <= set(columns):
        raise ValueError("conflicts_rare returns values of the rows given: name columns only")
    if not rows:
        return []
    cols = [table.c[name] for name in columns]
    lists = [_bound(conn, col, [row.get(col.name) for row in rows]) for col in cols]
    names = [*columns, *constants]
    consts = "".join(f", :k_{name}" for name in constants)
    target = f"INSERT INTO {table.name} ({', '.join(names)}) "
    tail = f" RETURNING {', '.join(returning)}"
    params: dict[str, Any] = {}
    postgresql = conn.dialect.name == "postgresql"
    if postgresql:
        casts = ", ".join(f"CAST(:c{i} AS {_pg_array(conn, col)})" for i, col in enumerate(cols))
        alias = ", ".join(f"v{i}" for i in range(len(cols)))
        source = f"SELECT {alias}{consts} FROM unnest({casts}) AS r({alias})"
        params.update({f"c{i}": pg_array_literal(values) for i, values in enumerate(lists)})
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(cols)))
        # "WHERE true": SQLite's parser needs it before an upsert clause after a SELECT.
        source = f"SELECT {picks}{consts} FROM json_each(:rows) WHERE true"
        rows_json = orjson.dumps([list(values) for values in zip(*lists, strict=True)])
        params["rows"] = rows_json.decode()  # text: json_each refuses a blob
    binds = [bindparam(f"k_{name}", type_=table.c[name].type) for name in constants]
    params.update({f"k_{name}": value for name, value in constants.items()})
    if postgresql and conflicts_rare:
        try:
            with conn.begin_nested():
                conn.execute(text(target + source).bindparams(*binds), params)
        except IntegrityError:
            pass  # some row is there already: insert the others
        else:  # every row went in: what RETURNING would say, without its round of rows
            inserted = namedtuple("inserted", returning)  # type: ignore[misc]
            return [inserted(*(row.get(name) for name in returning)) for row in rows]
    statement = text(target + source + " ON CONFLICT DO NOTHING" + tail).bindparams(*binds)
    return list(conn.execute(statement, params).all())


def _bound(conn: Connection, column: Column[Any], values: list[Any]) -> list[Any]:
    """``values`` as the driver receives them for ``column`` (enums as their values)."""
    if isinstance(column.type, UTCDateTime):
        return [None if v is None else time_text(v) for v in values]
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    values = [str(v) if isinstance(v, str) else v for v in values]  # StrEnum -> str
    return [process(v) for v in values] if process is not None else values


def time_text(value: datetime) -> str:
    """An aware time as :class:`UTCDateTime` stores it, in one call: on SQLite the text
    SQLAlchemy's own two steps write (naive UTC, then its DATETIME format, which is
    ``isoformat`` to the microsecond), which PostgreSQL's cast to ``timestamp[]`` reads
    as the same time. Those two steps were a tenth of the web process's samples
    (py-spy) while it applied webhook events; on PostgreSQL, binding a time and then
    writing it into an array literal cost 1.2 ms a thousand."""
    return naive_utc(value).isoformat(" ", "microseconds")


def pg_array_literal(values: Sequence[Any]) -> str:
    """``values`` (as the driver receives them) as one PostgreSQL array literal, for
    SQL to cast to the column's array type. psycopg dumps a Python list element by
    element, in Python: for a thousand rows of six columns that took longer than
    PostgreSQL took to insert them.

    Most columns are written by orjson: JSON's list of integers, booleans, ``null`` and
    strings is already an array literal once its brackets become braces (PostgreSQL
    reads an unquoted ``null`` as NULL, and brackets and braces inside a quoted string
    as themselves). A thousand ids took 550 us element by element, 10 us so; a thousand
    slugs 200 and 25. The two ways part only at escapes, so a list holding one (a
    quote, a backslash, a control character) goes the slow way, as does any other type
    (times are text by now, see :func:`_bound`; a float would be written NaN as null),
    element by element, which escapes for PostgreSQL or raises.
    """
    if set(map(type, values)) <= _JSON_PLAIN:
        try:
            json: bytes | None = orjson.dumps(values)
        except orjson.JSONEncodeError:  # an int beyond 64 bits
            json = None
        if json is not None and b"\\" not in json:
            return "{" + json[1:-1].decode() + "}"
    return "{" + ",".join(map(_pg_element, values)) + "}"


#: The types orjson writes as :func:`pg_array_literal` would, escapes aside.
_JSON_PLAIN = frozenset({str, int, bool, type(None)})


def _pg_element(value: Any) -> str:
    """One element of :func:`pg_array_literal`: NULL, or quoted (and escaped)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        if "\\" in value or '"' in value:
            value = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{value}"'
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # the cast to timestamp[] would drop its offset
            raise ValueError("aware datetime in an array literal; bind it first (_bound)")
        return f'"{value.isoformat(" ")}"'
    if isinstance(value, int | date):  # bool is an int: "True" and "False" read back
        return f'"{value}"'
    raise TypeError(f"no array literal for {type(value).__name__}")


def _pg_array(conn: Connection, column: Column[Any]) -> str:
    """The column's type as a PostgreSQL array, lengths dropped: a value too long for
    the column is refused by the insert, as a Core insert's would be, not cut short."""
    return re.sub(r"\(\d+\)", "", column.type.compile(dialect=conn.dialect)) + "[]"


def among(conn: Connection, column: Column[Any], ids: Sequence[int]) -> Any:
    """``column`` is one of ``ids``, passed as ONE parameter: an array literal on
    PostgreSQL (cast by the server), a JSON list on SQLite. A thousand-item ``IN (...)``
    costs more to render and for psycopg to parse than the statement costs to run."""
    literal = bindparam("among_ids", id_list(conn, ids), type_=String)
    if conn.dialect.name == "postgresql":
        return column == any_(cast(literal, ARRAY(BigInteger)))
    listed: Any = select(literal_column("value")).select_from(func.json_each(literal))
    return column.in_(listed.scalar_subquery())


def id_list(conn: Connection, values: Sequence[int]) -> str:
    """``values`` as one parameter: an array literal on PostgreSQL (for SQL to cast to
    ``bigint[]``), a JSON list on SQLite (for ``json_each``)."""
    if conn.dialect.name == "postgresql":
        return pg_array_ids(values)
    return json_ids(values)


def json_ids(values: Sequence[int]) -> str:
    """What json.dumps writes for a list of ints: orjson writes a thousand in 11-19 us,
    joining their str() took 240 (several lists a batch)."""
    return orjson.dumps(values if type(values) is list else list(values)).decode()


def pg_array_ids(values: Sequence[int]) -> str:
    """A PostgreSQL array literal of ints, for SQL to cast to ``bigint[]``. psycopg
    dumps a Python list of a thousand ints element by element, in Python: 1.3 ms a
    batch statement, against 0.2 ms for the one string. (JSON quotes anything that is
    not a number, so no value can break out of its element.)"""
    return "{" + json_ids(values)[1:-1] + "}"
