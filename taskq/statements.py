"""The SQL of a task's hot path (its claim and its outcome), built once per connection and shape.

Django builds and compiles a queryset afresh on every call, which cost more CPU per task
than the statements themselves, on threads that share one GIL with the web process they
live in (docs/benchmarks.md has the figures). These are the statements the ORM would
write, built from the model's own fields with the backend's own quoting, prepping and
converters, and kept per connection. They take the model as an argument and never import
it, so that models.py depends on this module and not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from django.db import IntegrityError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.features import skip_locked

# The order due tasks run in; due() and the claim both follow it, and taskq_claim_idx serves it.
DUE_ORDER = ("-priority", "run_after", "enqueued_at")

S = TypeVar("S")
# Each connection wrapper (one per thread and alias) keeps what it built as an attribute, so
# its own backend objects convert its rows, and the statements go when the wrapper does. A
# WeakKeyDictionary would not do: the converters are bound to the wrapper's own `ops`, so
# they would keep their key alive.
_ATTR = "_taskq_statements"


def _cached(conn: BaseDatabaseWrapper, key: Hashable, build: Callable[[], S]) -> S:
    built: dict[Hashable, Any] | None = getattr(conn, _ATTR, None)
    if built is None:
        built = {}
        setattr(conn, _ATTR, built)
    try:
        return built[key]  # type: ignore[no-any-return]
    except KeyError:
        statement = built[key] = build()
        return statement


M = TypeVar("M", bound=models.Model)


class ClaimedButUnreadable(Exception):
    """A claim committed, but its rows could not be turned into objects; ``pks`` need releasing."""

    def __init__(self, pks: list[Any]) -> None:
        super().__init__(f"claimed {len(pks)} rows that could not be read back")
        self.pks = pks


def _quoted_columns(model: type[models.Model], conn: BaseDatabaseWrapper) -> Callable[[str], str]:
    columns = {f.name: conn.ops.quote_name(f.column) for f in model._meta.concrete_fields}
    return columns.__getitem__


@dataclass(frozen=True)
class _Claim:
    sql: str
    names: list[str]
    columns: list[Any]
    converters: list[list[Any]]


def _build_claim(
    model: type[models.Model], conn: BaseDatabaseWrapper, limit: int, queues: int | None
) -> _Claim:
    meta = model._meta
    qn = conn.ops.quote_name
    col = _quoted_columns(model, conn)

    where = f"{col('status')} = %s AND {col('run_after')} <= %s"
    if queues is not None:
        where += f" AND {col('queue')} IN ({', '.join(['%s'] * queues)})"
    order = ", ".join(f"{col(f.lstrip('-'))} {'DESC' if f.startswith('-') else 'ASC'}" for f in DUE_ORDER)
    table, pk = qn(meta.db_table), col("id")
    # taskq_claim_idx puts priority before run_after, so run_after cannot bound its scan:
    # once the due rows are taken, it would walk on through every delayed row, holding
    # SQLite's write lock meanwhile. So the LIMIT is the number of due rows, counted up to
    # ``limit`` along taskq_due_idx, and the scan stops once it has found them. ORDER BY
    # run_after keeps PostgreSQL's planner on that index. The count locks nothing.
    due = (
        f"(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} "  # noqa: S608
        f"ORDER BY {col('run_after')} LIMIT {int(limit)}) AS due)"
    )
    picked = f"SELECT {pk} FROM {table} WHERE {where} ORDER BY {order} LIMIT {due}"  # noqa: S608
    if skip_locked(conn):
        picked += " FOR UPDATE SKIP LOCKED"
    fields = meta.concrete_fields
    # A CTE rather than IN (subquery): PostgreSQL may evaluate a plain subquery more than
    # once per UPDATE, and with SKIP LOCKED a second pass could claim beyond the limit.
    # MATERIALIZED, or SQLite runs the CTE again for each row it updates, with the same
    # effect. Identifiers come from quote_name and every value is a parameter.
    sql = (
        f"WITH picked AS MATERIALIZED ({picked}) UPDATE {table} SET {col('status')} = %s, "  # noqa: S608
        f"{col('worker')} = %s, {col('attempts')} = {col('attempts')} + 1, {col('started_at')} = %s, "
        f"{col('lease_expires_at')} = %s WHERE {pk} IN (SELECT picked.{pk} FROM picked) "
        f"AND {col('status')} = %s RETURNING {', '.join(qn(f.column) for f in fields)}"
    )
    # The same conversions a queryset applies to what it reads: JSON decoding, SQLite's dates.
    columns = [f.get_col(meta.db_table) for f in fields]
    converters = [conn.ops.get_db_converters(c) + c.get_db_converters(conn) for c in columns]
    return _Claim(sql, [f.attname for f in fields], columns, converters)


def claim_returning(
    model: type[M],
    using: str,
    worker: str,
    limit: int,
    now: datetime,
    expires: datetime,
    queues: Sequence[str] | None,
    queued: str,
    running: str,
) -> list[M]:
    """Claim up to ``limit`` due rows in one UPDATE ... RETURNING; the caller checks the backend can."""
    conn = connections[using]
    shape = None if queues is None else len(queues)
    claim = _cached(conn, ("claim", limit, shape), lambda: _build_claim(model, conn, limit, shape))
    stamp = cast("models.Field[Any, Any]", model._meta.get_field("started_at"))
    at, until = stamp.get_db_prep_value(now, conn), stamp.get_db_prep_value(expires, conn)
    where = [queued, at, *(queues or ())]
    params = [*where, *where, running, worker, at, until, queued]
    # In autocommit this is one round trip and one commit, where a locking claim costs BEGIN,
    # SELECT, UPDATE and COMMIT.
    with transaction.mark_for_rollback_on_error(using), conn.cursor() as cursor:
        cursor.execute(claim.sql, params)
        rows = cursor.fetchall()
    tasks = []
    try:
        for raw in rows:
            row = list(raw)
            for i, funcs in enumerate(claim.converters):
                for func in funcs:
                    row[i] = func(row[i], claim.columns[i], conn)
            tasks.append(model.from_db(using, claim.names, row))
    except Exception as exc:
        pk_at = claim.names.index("id")
        raise ClaimedButUnreadable([raw[pk_at] for raw in rows]) from exc
    return tasks


def _build_update(
    model: type[models.Model], conn: BaseDatabaseWrapper, values: Sequence[str], where: Sequence[str]
) -> str:
    meta = model._meta
    qn = conn.ops.quote_name
    col = _quoted_columns(model, conn)

    assignments = ", ".join(f"{col(name)} = %s" for name in values)
    conditions = " AND ".join(f"{col(name)} = %s" for name in ("id", *where))
    return f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {conditions}"  # noqa: S608


def update_row(
    model: type[models.Model], using: str, pk: int, where: Mapping[str, Any], values: Mapping[str, Any]
) -> int:
    """UPDATE one row's ``values`` if it still matches ``where``; return how many rows matched."""
    meta = model._meta
    conn = connections[using]
    key = ("update", model._meta.label, tuple(values), tuple(where))
    sql = _cached(conn, key, lambda: _build_update(model, conn, list(values), list(where)))
    # get_db_prep_save is what QuerySet.update() applies: None becomes NULL, JSON is adapted.
    params = [meta.get_field(n).get_db_prep_save(v, conn) for n, v in values.items()]  # type: ignore[union-attr]
    params += [pk, *(meta.get_field(n).get_db_prep_value(v, conn) for n, v in where.items())]  # type: ignore[union-attr]
    with transaction.mark_for_rollback_on_error(using), conn.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


@dataclass(frozen=True)
class _Insert:
    sql: str
    fields: list[Any]  # the columns the INSERT writes
    returning: bool  # it reads back ``returned`` itself, else the key comes from last_insert_id()
    returned: list[tuple[Any, Any, list[Any]]]  # (field, column, converters) of what it reads back
    skips: bool  # ON CONFLICT ... DO NOTHING skips a row whose key is taken


def _build_insert(model: type[models.Model], conn: BaseDatabaseWrapper, conflict: str | None) -> _Insert:
    meta = model._meta
    qn = conn.ops.quote_name
    pk = meta.pk
    assert pk is not None
    # A generated column (unique_live) is the database's to fill, as Model.save() leaves it.
    fields = [f for f in meta.concrete_fields if f is not pk and not f.generated]
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    skips = False
    if conflict is not None and conn.features.supports_update_conflicts_with_target:
        skips = True
        target = cast("models.Field[Any, Any]", meta.get_field(conflict))
        sql += f" ON CONFLICT ({qn(target.column)}) DO NOTHING"
    # What save() reads back: the primary key and the generated columns, or where the backend
    # cannot return columns, the primary key from last_insert_id().
    returning = bool(conn.features.can_return_columns_from_insert)
    read = list(meta.db_returning_fields) if returning else [pk]
    if returning:
        sql += f" RETURNING {', '.join(qn(f.column) for f in read)}"
    returned = []
    for field in read:
        col = field.get_col(meta.db_table)
        returned.append((field, col, conn.ops.get_db_converters(col) + col.get_db_converters(conn)))
    return _Insert(sql, fields, returning, returned, skips)


def insert_row(obj: models.Model, using: str, unique: tuple[str, str] | None = None) -> bool:
    """INSERT ``obj`` as one statement, as ``save(force_insert=True)`` would, and set its primary key.

    With ``unique``, a field and the name of the unique constraint on it, a row whose value is
    taken is not written, and this returns False. Unlike save(), it sends no pre_save or post_save
    signal.
    """
    model = type(obj)
    conn = connections[using]
    conflict = None if unique is None else unique[0]
    key = ("insert", model._meta.label, conflict)
    insert = _cached(conn, key, lambda: _build_insert(model, conn, conflict))
    # pre_save() applies auto_now_add; get_db_prep_save() is what the ORM's INSERT binds.
    params = [f.get_db_prep_save(f.pre_save(obj, True), conn) for f in insert.fields]
    with transaction.mark_for_rollback_on_error(using):
        try:
            with conn.cursor() as cursor:
                cursor.execute(insert.sql, params)
                if insert.returning:
                    row = cursor.fetchone()  # None where ON CONFLICT skipped the row
                else:
                    row = (conn.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column),)
        except IntegrityError as exc:
            # Caught inside mark_for_rollback_on_error: on MariaDB, which has no ON CONFLICT
            # with a target, a duplicate key leaves the caller's transaction usable.
            if unique is None or insert.skips or unique[1] not in str(exc):
                raise
            return False
    if row is None:
        return False
    for (field, col, converters), value in zip(insert.returned, row, strict=True):
        for convert in converters:
            value = convert(value, col, conn)
        setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = using
    return True
