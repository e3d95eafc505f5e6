"""``core.lookups.AnyOf``: many ids as one array parameter, the same rows as ``__in``."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from core.lookups import AnyOf
from orgs.models import Membership, UnscopedQueryError
from tests.conftest import add_member

pytestmark = pytest.mark.django_db


def test_the_same_rows_as_in_with_one_parameter(org, other_org, owner):
    members = [add_member(org) for _ in range(3)]
    ids = [member.pk for member in members[:2]] + [uuid.uuid4()]
    scoped = Membership.objects.for_org(org)
    with CaptureQueriesContext(connection) as queries:
        found = set(scoped.filter(AnyOf(F("user_id"), ids)).values_list("user_id", flat=True))
    assert found == set(scoped.filter(user_id__in=ids).values_list("user_id", flat=True)) == set(ids[:2])
    assert " = ANY(" in queries[0]["sql"]
    assert queries[0]["sql"].count("::uuid[]") == 1  # the ids are one array, not one placeholder each


def test_no_ids_no_rows(org, owner):
    assert list(Membership.objects.for_org(org).filter(AnyOf(F("user_id"), []))) == []


def test_it_names_the_org_of_an_org_scoped_read(org, other_org, owner):
    """``AnyOf`` on the org field scopes a read as ``organization_id__in`` does; on another column,
    the read must still name its org."""
    assert Membership.objects.filter(AnyOf(F("organization_id"), [org.pk])).count() == 1
    with pytest.raises(UnscopedQueryError):
        Membership.objects.filter(AnyOf(F("user_id"), [owner.pk])).count()
