"""The ledger is append-only in the database itself: a trigger refuses every UPDATE and DELETE of a
ledger row, whoever sends it (the ORM, the admin, a psql session). TRUNCATE, which only a test
database's flush or an operator's deliberate reset uses, is not a row change and still works."""

from django.db import migrations

MESSAGE = "billing_ledgerentry is append-only: rows cannot be changed or deleted"

POSTGRES = f"""
CREATE FUNCTION billing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER billing_ledger_append_only BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""
POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
"""
SQLITE = [
    f"CREATE TRIGGER billing_ledger_no_update BEFORE UPDATE ON billing_ledgerentry "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
    f"CREATE TRIGGER billing_ledger_no_delete BEFORE DELETE ON billing_ledgerentry "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS billing_ledger_no_update;", "DROP TRIGGER IF EXISTS billing_ledger_no_delete;"]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_REVERSE)
    elif vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_reservation_account"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
