"""Model instances from hand-written SQL, for the few per-request reads on the hot path.

Building a query through the ORM costs ~0.3–1 ms of Python per query here (see
docs/performance.md, "Predict"); the same read as a fixed SQL string costs a
tenth of that. ``RowLoader`` keeps what the ORM would still do for such a read:
every column goes through the converters Django applies for that field on this
database (SQLite's text datetimes, JSON text, booleans stored as integers), so
the instance equals what ``Model.objects.get`` returns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import models


class RowLoader:
    """Select every concrete column of ``model`` under ``alias`` and load rows back."""

    def __init__(self, model: type[models.Model], alias: str, *,
                 exclude: tuple[type[models.Field], ...] = ()) -> None:
        """``exclude``: field classes left deferred (loaded on first access, as with
        ``.defer()``), e.g. JSON and long text a hot read never looks at."""
        self.model = model
        self.alias = alias
        self.fields = [f for f in model._meta.concrete_fields
                       if f.primary_key or not isinstance(f, exclude)]
        self.attnames = [f.attname for f in self.fields]
        self._converters: dict[str, list[tuple[Any, list]]] = {}

    def columns(self, connection) -> str:
        qn = connection.ops.quote_name
        return ", ".join(f"{qn(self.alias)}.{qn(f.column)}" for f in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def _converters_for(self, connection) -> list[tuple[Any, list]]:
        found = self._converters.get(connection.alias)
        if found is None:
            found = []
            for field in self.fields:
                col = field.get_col(self.alias)
                found.append((col, connection.ops.get_db_converters(col)
                              + col.get_db_converters(connection)))
            self._converters[connection.alias] = found
        return found

    def load(self, values: Sequence[Any], connection) -> models.Model:
        converted = []
        for value, (col, converters) in zip(values, self._converters_for(connection),
                                            strict=True):
            for convert in converters:
                value = convert(value, col, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, self.attnames, converted)


def fetchone(connection, sql: str, params: Any, *, binary: bool = False) -> tuple | None:
    """Run a fixed query and return its first row.

    On PostgreSQL it runs on the connection's own psycopg cursor (server-side
    binding), prepared when the connection allows it (``prepare_threshold`` in the
    database OPTIONS, see portal/settings.py): a query with several EXISTS and joins
    spends ~0.3 ms in the planner, paid once per connection instead of once per
    request. Elsewhere it goes through Django's cursor. Database errors are Django's
    either way.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    # psycopg.Cursor, not the connection's cursor_factory: Django's binds client-side,
    # which cannot prepare.
    with connection.wrap_database_errors:
        prepare = raw.prepare_threshold is not None or None
        try:
            with psycopg.Cursor(raw) as cursor:
                cursor.execute(sql, params, prepare=prepare, binary=binary)
                return cursor.fetchone()
        except psycopg.errors.FeatureNotSupported:
            # "cached plan must not change result type": a migration altered a table
            # under a statement this connection prepared. Outside a transaction, forget
            # the prepared statements and run it again.
            if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise
            with psycopg.Cursor(raw) as cursor:
                cursor.execute("DEALLOCATE ALL")  # psycopg clears its cache on seeing it
                cursor.execute(sql, params, prepare=False, binary=binary)
                return cursor.fetchone()


_insert_statements: dict[tuple, tuple[str, list]] = {}


def _insert_sql(model: type[models.Model], connection, guard: str | None) -> tuple[str, list]:
    key = (model, connection.vendor, guard)
    found = _insert_statements.get(key)
    if found is None:
        found = _insert_statements[key] = _build_insert_sql(model, connection, guard)
    return found


def _build_insert_sql(model: type[models.Model], connection, guard: str | None):
    quote = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    pk = model._meta.pk
    columns = ", ".join(quote(f.column) for f in fields)
    if guard is None:
        source = "VALUES ({})".format(", ".join(["%s"] * len(fields)))
    else:
        # INSERT ... SELECT gives the parameters no column to take their types from.
        source = "SELECT {} WHERE {}".format(", ".join(
            f"CAST(%s AS {f.db_type(connection)})" for f in fields), guard)
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608 - names
           f"{source} RETURNING {quote(pk.column)}")
    return sql, fields


def _json_dumps(value: Any) -> bytes | str:
    try:
        return orjson.dumps(value)
    except TypeError:  # what orjson refuses (integers beyond 64 bits, ...): as Django would
        return json.dumps(value)


_GENERIC, _JSON = object(), object()
# Field classes (exact) whose pre_save is a plain attribute read and whose
# get_db_prep_save on PostgreSQL returns a value of these Python types unchanged.
_PASS_THROUGH: dict[type, tuple[type, ...]] = {
    # (Not integer fields: Django sends those as psycopg's Int2/Int4/Int8.)
    models.CharField: (str,), models.TextField: (str,), models.FloatField: (float,),
    models.BooleanField: (bool,), models.ForeignKey: (int,), models.UUIDField: (uuid.UUID,),
    models.DateTimeField: (datetime,),
}
_plans: dict[type, list] = {}


def _field_plan(model: type[models.Model], fields: list) -> list:
    plan = _plans.get(model)
    if plan is None:
        plan = []
        for f in fields:
            kind = _PASS_THROUGH.get(type(f), _GENERIC)
            if type(f) is models.JSONField and f.encoder is None:
                kind = _JSON
            if type(f) is models.DateTimeField and (f.auto_now or f.auto_now_add):
                kind = _GENERIC
            if type(f) is models.ForeignKey and type(f.target_field) not in (
                    models.AutoField, models.BigAutoField):
                kind = _GENERIC  # an auto primary key takes a plain int
            plan.append((f, f.attname, kind))
        _plans[model] = plan
    return plan


def insert_params(connection, obj: models.Model, fields: list) -> list:
    """The parameters ``obj.save()`` would send for ``fields``, PostgreSQL: each field's
    ``get_db_prep_save(pre_save(...))``, skipped where that returns the value unchanged."""
    from psycopg.types.json import Jsonb

    values = []
    for f, attname, kind in _field_plan(type(obj), fields):
        if kind is _GENERIC:
            values.append(f.get_db_prep_save(f.pre_save(obj, True), connection))
            continue
        value = getattr(obj, attname)
        if value is None:
            values.append(None)  # what get_db_prep_save gives for None, for these fields
        elif kind is _JSON:
            # What JSONField.get_db_prep_save does, serialized by orjson instead of json.
            values.append(Jsonb(value, dumps=_json_dumps))
        elif type(value) in kind and (type(value) is not datetime or value.tzinfo is not None):
            values.append(value)  # get_db_prep_save would return it unchanged
        else:
            values.append(f.get_db_prep_save(f.pre_save(obj, True), connection))
    return values


def insert_one(connection, obj: models.Model, *, guard: tuple[str, list] | None = None) -> bool:
    """INSERT one new row (autocommitted unless inside atomic) and set its primary key.

    What ``obj.save(force_insert=True)`` does for a model without parents, signals or
    a custom save(), as a fixed statement that PostgreSQL keeps prepared. ``guard``
    (PostgreSQL only): a (condition, params) pair; the row is written only if the
    condition holds when the statement runs, and False is returned if it did not.
    """
    if connection.vendor != "postgresql":
        if guard is not None:
            raise ValueError("guarded inserts are written for PostgreSQL only")
        obj.save(force_insert=True, using=connection.alias)
        return True

    sql, fields = _insert_sql(type(obj), connection, guard[0] if guard else None)
    values = insert_params(connection, obj, fields)
    row = fetchone(connection, sql, values + guard[1] if guard else values)
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
