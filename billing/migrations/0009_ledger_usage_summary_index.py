"""The usage summary's index: an org's usage entries by time, with every figure the summary sums and
every key it groups by, so that PostgreSQL answers it from the index alone. Built CONCURRENTLY on
PostgreSQL: the ledger takes a row on every model call, and a plain CREATE INDEX would stop those
writes for as long as it takes to index a large ledger."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("kind", "usage")),
    fields=["organization", "created_at"],
    include=("amount", "input_tokens", "output_tokens", "user_id", "specialist_id", "model"),
    name="ledger_usage_summary",
)


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """CONCURRENTLY where the database has it (PostgreSQL); an ordinary index elsewhere (SQLite)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("billing", "0008_circuit_opened_by_operator"),
        ("orgs", "0004_membership_invitation_details"),
    ]

    operations = [AddIndexConcurrentlyOnPostgres(model_name="ledgerentry", index=INDEX)]
