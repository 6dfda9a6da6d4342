"""Database triggers that make the audit table append-only, for each backend.

Installed by migration 0002. They refuse UPDATE and DELETE from any client,
not only Django. (TRUNCATE is a table-level privilege: production deployments
should run the app as a role that does not own the table; see operations.md.)
"""

from __future__ import annotations

TABLE = "audits_auditevent"

POSTGRES_INSTALL = [
    """
    CREATE OR REPLACE FUNCTION attest_audit_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only (% refused on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql;
    """,
    f"DROP TRIGGER IF EXISTS attest_audit_no_update ON {TABLE};",
    f"""CREATE TRIGGER attest_audit_no_update BEFORE UPDATE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION attest_audit_append_only();""",
    f"DROP TRIGGER IF EXISTS attest_audit_no_delete ON {TABLE};",
    f"""CREATE TRIGGER attest_audit_no_delete BEFORE DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION attest_audit_append_only();""",
]
POSTGRES_REMOVE = [
    f"DROP TRIGGER IF EXISTS attest_audit_no_update ON {TABLE};",
    f"DROP TRIGGER IF EXISTS attest_audit_no_delete ON {TABLE};",
]

SQLITE_INSTALL = [
    f"""CREATE TRIGGER IF NOT EXISTS attest_audit_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only (UPDATE refused)'); END;""",
    f"""CREATE TRIGGER IF NOT EXISTS attest_audit_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only (DELETE refused)'); END;""",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS attest_audit_no_update;",
    "DROP TRIGGER IF EXISTS attest_audit_no_delete;",
]


def statements(vendor: str, *, install: bool) -> list[str]:
    if vendor == "postgresql":
        return POSTGRES_INSTALL if install else POSTGRES_REMOVE
    if vendor == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_REMOVE
    raise RuntimeError(f"no append-only triggers written for the {vendor} backend")


def run(connection, *, install: bool) -> None:
    with connection.cursor() as cursor:
        for sql in statements(connection.vendor, install=install):
            cursor.execute(sql)
