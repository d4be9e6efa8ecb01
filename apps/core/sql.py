"""Hand-written SQL that still returns model instances, for the raters' hot path.

`next` and judgment submit run a dozen statements per call. Building each with the ORM
(query objects, joins, compilers) cost more CPU than PostgreSQL spent running it, so the
statements on that path are written as SQL. These helpers keep that safe: column lists come
from the models' own metadata, and every value goes through the same database converters the
ORM applies (JSON decoding, aware datetimes on SQLite, ...), so callers get ordinary model
instances, with related objects attached where a statement joined them.

    sql = f"SELECT {columns(Task, 't')} FROM {table(Task)} t WHERE t.id = %s"
    (task,) = fetch_models(sql, [task_id], [Task])[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from django.db import connection
from django.db.models import Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def columns(model: type[Model], alias: str) -> str:
    """The model's concrete columns, qualified by `alias`, in field order."""
    return _columns(model, alias, connection.vendor)


@cache
def _columns(model: type[Model], alias: str, vendor: str) -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


@cache
def _loader(model: type[Model], vendor: str):
    """(attnames, [(position, column expression, converters)]) for `model` on `vendor`."""
    fields = model._meta.concrete_fields
    conversions = []
    for position, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if converters:
            conversions.append((position, col, converters))
    return [field.attname for field in fields], conversions


def model_from_row(model: type[Model], row: Sequence, start: int = 0) -> tuple[Model | None, int]:
    """The instance whose columns start at `row[start]` (None if its primary key is NULL,
    as from an outer join), and the index of the column after them."""
    attnames, conversions = _loader(model, connection.vendor)
    end = start + len(attnames)
    values = list(row[start:end])
    pk_index = attnames.index(model._meta.pk.attname)
    if values[pk_index] is None:
        return None, end
    for position, col, converters in conversions:
        value = values[position]
        for converter in converters:
            value = converter(value, col, connection)
        values[position] = value
    return model.from_db(connection.alias, attnames, values), end


def fetch_models(sql: str, params: Sequence, models: Sequence[type[Model]]) -> list[list]:
    """Run `sql`; each row is split into one instance per model, in the order given.

    Columns after the models' (extra values the statement selected) are appended as is.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    result = []
    for row in rows:
        items, start = [], 0
        for model in models:
            instance, start = model_from_row(model, row, start)
            items.append(instance)
        items.extend(row[start:])
        result.append(items)
    return result


def insert(instance: Model) -> Model:
    """Save a new `instance` with one INSERT (its primary key read back), built without the
    ORM's query compiler. Field defaults, `auto_now_add` and the database preparation of
    each value are applied as `save()` applies them; model signals are not sent (nothing in
    PrefLoop listens to them on the models saved this way)."""
    model = type(instance)
    fields, statement = _insert_statement(model, connection.vendor)
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        pk = cursor.fetchone()[0] if connection.features.can_return_columns_from_insert else None
        if pk is None:
            pk = cursor.lastrowid
    setattr(instance, model._meta.pk.attname, pk)
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


@cache
def _insert_statement(model: type[Model], vendor: str) -> tuple[list, str]:
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if field is not model._meta.pk]
    statement = (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if connection.features.can_return_columns_from_insert:
        statement += f" RETURNING {quote(model._meta.pk.column)}"
    return fields, statement
