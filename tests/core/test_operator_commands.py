from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User
from orgs.models import Membership, Organization
from specialists.models import Specialist
from tasks.models import Task

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_logs_in(anon, settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    assert "demo@leancore.local" in out.getvalue()
    org = Organization.objects.get(slug="demo")
    assert Membership.all_orgs.get(organization=org, user__email="demo@leancore.local").role == "owner"
    assert Specialist.all_orgs.filter(organization=org, model="local").count() == 3
    assert Task.all_orgs.filter(organization=org).count() == 3
    assert Task.all_orgs.filter(organization=org, assignee_specialist__isnull=False).count() == 2
    response = anon.post("/auth/login", {"email": "demo@leancore.local", "password": "demo-Passw0rd!"}, format="json")
    assert response.status_code == 200


def test_createsuperuser_noinput_from_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@leancore.test")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "Op3rator-pass!")
    monkeypatch.setenv("DJANGO_SUPERUSER_NAME", "Olga Ops")
    call_command("createsuperuser", "--noinput", stdout=StringIO())
    user = User.objects.get(email="ops@leancore.test")
    assert (user.is_staff, user.is_superuser, user.name) == (True, True, "Olga Ops")
    assert user.check_password("Op3rator-pass!")


def test_seed_demo_operator_logs_in_to_the_admin_under_debug_only(settings, client):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError, match="only with DEBUG"):
        call_command("seed_demo", "--operator", stdout=StringIO())
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", "--operator", stdout=out)
    assert "operator@leancore.local / operator-Passw0rd!" in out.getvalue()
    assert client.login(email="operator@leancore.local", password="operator-Passw0rd!")
    assert client.get("/admin/orgs/organization/").status_code == 200


def test_seed_demo_refuses_known_passwords_without_debug(settings, anon):
    """The attack: seed_demo on a production install (DEBUG off) gives the demo owner a password
    everyone knows. Refused, and nothing is made, unless ``--i-know`` says it is meant."""
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError, match="known password"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(email="demo@leancore.local").exists()
    assert not Organization.objects.filter(slug="demo").exists()
    call_command("seed_demo", "--i-know", stdout=StringIO())
    response = anon.post("/auth/login", {"email": "demo@leancore.local", "password": "demo-Passw0rd!"}, format="json")
    assert response.status_code == 200
