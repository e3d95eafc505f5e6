from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

PROJECT_APPS = {"accounts", "orgs", "billing", "specialists", "chat", "mcps"}


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())  # exits non-zero on drift


@pytest.mark.django_db
def test_migrations_are_linear():
    leaves = Counter(app for app, _ in MigrationLoader(connection).graph.leaf_nodes() if app in PROJECT_APPS)
    assert leaves
    assert all(count == 1 for count in leaves.values()), leaves
