"""Database triggers that make tables append-only, for each backend.

The audit table gets them in migration audits/0002; other append-only tables
(release signatures) install them the same way from their own migrations. They
refuse UPDATE and DELETE from any client, not only Django. (TRUNCATE is a
table-level privilege: production deployments run the app as a role that does
not own the tables; see operations.md.)
"""

from __future__ import annotations

TABLE = "audits_auditevent"

_PG_FUNCTION = """
    CREATE OR REPLACE FUNCTION attest_audit_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION '% rows are append-only (% refused)', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql;
"""


def _names(table: str) -> tuple[str, str]:
    if table == TABLE:  # the names migration 0002 first used
        return "attest_audit_no_update", "attest_audit_no_delete"
    return f"attest_{table}_no_update", f"attest_{table}_no_delete"


def statements(vendor: str, *, install: bool, table: str = TABLE) -> list[str]:
    no_update, no_delete = _names(table)
    if vendor == "postgresql":
        if not install:
            return [f"DROP TRIGGER IF EXISTS {no_update} ON {table};",
                    f"DROP TRIGGER IF EXISTS {no_delete} ON {table};"]
        return [
            _PG_FUNCTION,
            f"DROP TRIGGER IF EXISTS {no_update} ON {table};",
            f"CREATE TRIGGER {no_update} BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION attest_audit_append_only();",
            f"DROP TRIGGER IF EXISTS {no_delete} ON {table};",
            f"CREATE TRIGGER {no_delete} BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION attest_audit_append_only();",
        ]
    if vendor == "sqlite":
        if not install:
            return [f"DROP TRIGGER IF EXISTS {no_update};", f"DROP TRIGGER IF EXISTS {no_delete};"]
        return [
            f"CREATE TRIGGER IF NOT EXISTS {no_update} BEFORE UPDATE ON {table} BEGIN "
            f"SELECT RAISE(ABORT, '{table} rows are append-only (UPDATE refused)'); END;",
            f"CREATE TRIGGER IF NOT EXISTS {no_delete} BEFORE DELETE ON {table} BEGIN "
            f"SELECT RAISE(ABORT, '{table} rows are append-only (DELETE refused)'); END;",
        ]
    raise RuntimeError(f"no append-only triggers written for the {vendor} backend")


def run(connection, *, install: bool, table: str = TABLE) -> None:
    with connection.cursor() as cursor:
        for sql in statements(connection.vendor, install=install, table=table):
            cursor.execute(sql)
