"""Database triggers for the prediction log: append-only, except purging raw inputs.

UPDATE may only set ``input`` to NULL (and stamp ``purged_at``); any other change
and any DELETE is refused by the database itself, on PostgreSQL and SQLite.
"""

from __future__ import annotations

TABLE = "inference_prediction"
PURGEABLE = ("input", "purged_at")

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION attest_prediction_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{TABLE} rows are append-only (DELETE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.input IS NOT NULL
       OR (to_jsonb(NEW) - 'input' - 'purged_at') IS DISTINCT FROM
          (to_jsonb(OLD) - 'input' - 'purged_at') THEN
        RAISE EXCEPTION '{TABLE} rows are append-only (only the raw input may be purged)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def statements(vendor: str, *, install: bool, columns: list[str]) -> list[str]:
    if vendor == "postgresql":
        drop = f"DROP TRIGGER IF EXISTS attest_prediction_guard ON {TABLE};"
        if not install:
            return [drop]
        return [_PG_FUNCTION, drop,
                f"CREATE TRIGGER attest_prediction_guard BEFORE UPDATE OR DELETE ON {TABLE} "
                "FOR EACH ROW EXECUTE FUNCTION attest_prediction_guard();"]
    if vendor == "sqlite":
        names = ("attest_prediction_no_delete", "attest_prediction_no_update",
                 "attest_prediction_purge_only")
        if not install:
            return [f"DROP TRIGGER IF EXISTS {n};" for n in names]
        frozen = ", ".join(c for c in columns if c not in PURGEABLE)
        return [
            f"CREATE TRIGGER IF NOT EXISTS {names[0]} BEFORE DELETE ON {TABLE} BEGIN "
            f"SELECT RAISE(ABORT, '{TABLE} rows are append-only (DELETE refused)'); END;",
            f"CREATE TRIGGER IF NOT EXISTS {names[1]} BEFORE UPDATE OF {frozen} ON {TABLE} BEGIN "
            f"SELECT RAISE(ABORT, '{TABLE} rows are append-only (UPDATE refused)'); END;",
            f"CREATE TRIGGER IF NOT EXISTS {names[2]} BEFORE UPDATE OF input ON {TABLE} "
            f"WHEN NEW.input IS NOT NULL BEGIN "
            f"SELECT RAISE(ABORT, '{TABLE} rows are append-only (only the raw input may be "
            "purged)'); END;",
        ]
    raise RuntimeError(f"no prediction-log triggers written for the {vendor} backend")


def run(connection, *, install: bool) -> None:
    with connection.cursor() as cursor:
        columns = [c.name for c in connection.introspection.get_table_description(cursor, TABLE)]
        for sql in statements(connection.vendor, install=install, columns=columns):
            cursor.execute(sql)


def reinstall(apps, schema_editor) -> None:
    """Migration step after altering the prediction table: SQLite alters columns by
    rebuilding the table, which drops its triggers."""
    run(schema_editor.connection, install=True)
