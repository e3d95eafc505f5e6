from __future__ import annotations

from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

# Every app of this project (not Django's or a library's): read from the installed apps, so an app
# added later is checked without anyone remembering to list it here.
PROJECT_APPS = {
    config.label
    for config in apps.get_app_configs()
    if Path(config.path).resolve().is_relative_to(Path(settings.BASE_DIR).resolve())
}


def test_every_app_of_the_project_is_checked():
    assert {"accounts", "orgs", "billing", "specialists", "chat", "mcps", "workspaces", "tasks"} <= PROJECT_APPS


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", *sorted(PROJECT_APPS), "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_migrations_are_linear():
    loader = MigrationLoader(connection)
    with_models = {label for label in PROJECT_APPS if list(apps.get_app_config(label).get_models())}
    assert with_models <= set(loader.migrated_apps), with_models - set(loader.migrated_apps)
    leaves = Counter(app for app, _ in loader.graph.leaf_nodes() if app in PROJECT_APPS)
    assert set(leaves) == set(loader.migrated_apps) & PROJECT_APPS
    assert all(count == 1 for count in leaves.values()), leaves


@pytest.mark.django_db(transaction=True)
def test_invitations_moving_to_orgs_keep_every_pending_invitation():
    """orgs.0002 copies each invitation token's membership into orgs.Invitation before
    accounts.0003 drops the column: a pending invitation sent before the move still opens its
    membership after it, and a reset token (no membership) gets no invitation."""
    from datetime import timedelta

    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    before = [("orgs", "0001_initial"), ("accounts", "0002_initial")]
    after = [("orgs", "0002_invitation"), ("accounts", "0003_remove_onetimetoken_membership")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("accounts", "User").objects.create(email="invited@example.com", name="I")
    org = old.get_model("orgs", "Organization").objects.create(name="Moving", slug="moving")
    membership = old.get_model("orgs", "Membership").objects.create(
        organization=org, user=user, role="member", status="invited"
    )
    tokens = old.get_model("accounts", "OneTimeToken").objects
    expires = timezone.now() + timedelta(days=7)
    invite = tokens.create(user=user, purpose="invite", membership=membership, token_hash="a" * 64, expires_at=expires)
    reset = tokens.create(user=user, purpose="password_reset", token_hash="b" * 64, expires_at=expires)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    invitations = new.get_model("orgs", "Invitation").objects
    assert list(invitations.values_list("token_id", "membership_id")) == [(invite.pk, membership.pk)]
    assert not invitations.filter(token_id=reset.pk).exists()
    assert "membership_id" not in {f.column for f in new.get_model("accounts", "OneTimeToken")._meta.fields}

    executor = MigrationExecutor(connection)  # and back: the link returns to the token
    executor.migrate(before)
    back = executor.loader.project_state(before).apps
    assert back.get_model("accounts", "OneTimeToken").objects.get(pk=invite.pk).membership_id == membership.pk
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_artifacts_moving_to_chat_keep_their_rows():
    """chat.0007 takes over the Artifact model on workspaces' table, workspaces.0002 lets go of it,
    and chat.0008 renames the table: an artifact saved before the move is read by chat after it."""
    from django.db.migrations.executor import MigrationExecutor

    before = [("chat", "0006_message_heartbeat"), ("workspaces", "0001_initial")]
    after = [("chat", "0008_artifact_table"), ("workspaces", "0002_artifact_moves_to_chat")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("accounts", "User").objects.create(email="saver@example.com", name="S")
    org = old.get_model("orgs", "Organization").objects.create(name="Savers", slug="savers")
    workspace = old.get_model("workspaces", "Workspace").objects.create(organization=org, name="W", created_by=user)
    saved = old.get_model("workspaces", "Artifact").objects.create(
        organization=org, workspace=workspace, title="Plan", content="Step one."
    )

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    moved = new.get_model("chat", "Artifact").objects.get(pk=saved.pk)
    assert (moved.title, moved.content, moved.workspace_id) == ("Plan", "Step one.", workspace.pk)
    assert "workspaces_artifact" not in connection.introspection.table_names()
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
