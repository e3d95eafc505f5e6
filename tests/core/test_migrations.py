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
