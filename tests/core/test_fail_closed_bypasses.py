"""The fail-closed rule (``orgs.models.OrgScopedQuerySet``) has no back doors: an unscoped
``objects`` query is refused also inside a union, as a subquery, as raw SQL, iterated asynchronously,
or "scoped" by a queryset of every organization, ORed with an unscoped query, or "scoped" by an
``AnyOf`` that limits no row of its own; a scope given only inside a ``Q`` is refused too (it fails
closed)."""

from __future__ import annotations

import asyncio

import pytest
from django.db.models import F, OuterRef, Q

from core.lookups import AnyOf
from orgs.models import Organization, UnscopedQueryError
from specialists.models import Specialist
from tests.conftest import make_org, make_specialist

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two(db):
    a, b = make_org(name="A"), make_org(name="B")
    make_specialist(a, name="SA")
    make_specialist(b, name="SB")
    return a, b


def test_a_scope_only_inside_a_q_is_refused(two):
    a, _ = two
    with pytest.raises(UnscopedQueryError):
        list(Specialist.objects.filter(Q(organization=a)))


def test_a_union_with_an_unscoped_part_is_refused(two):
    a, _ = two
    with pytest.raises(UnscopedQueryError):
        list(Specialist.objects.for_org(a).union(Specialist.objects.all()).values_list("name", flat=True))
    both = Specialist.objects.for_org(a).union(Specialist.objects.for_org(two[1]))
    assert sorted(both.values_list("name", flat=True)) == ["SA", "SB"]  # every part scoped: it runs


def test_an_unscoped_subquery_is_refused(two):
    inner = Specialist.objects.filter(name="SB").values("organization_id")
    with pytest.raises(UnscopedQueryError):
        list(Organization.objects.filter(pk__in=inner))
    scoped = Specialist.objects.for_org(two[1]).values("organization_id")
    assert list(Organization.objects.filter(pk__in=scoped).values_list("name", flat=True)) == ["B"]


def test_raw_sql_through_objects_is_refused(two):
    with pytest.raises(UnscopedQueryError):
        list(Specialist.objects.raw("SELECT * FROM specialists_specialist"))


def test_async_iteration_is_refused(two):
    async def go():
        return [s.name async for s in Specialist.objects.aiterator()]

    with pytest.raises(UnscopedQueryError):
        asyncio.run(go())


def test_every_organization_as_the_scope_is_refused(two):
    with pytest.raises(UnscopedQueryError):
        list(Specialist.objects.filter(organization__in=Organization.objects.all()))
    ids = [org.pk for org in two]
    assert Specialist.objects.filter(organization__in=ids).count() == 2  # named ids: scoped


def test_an_or_with_an_unscoped_part_is_refused(two):
    a, b = two
    for combine in (lambda x, y: x | y, lambda x, y: x ^ y):
        with pytest.raises(UnscopedQueryError):
            list(combine(Specialist.objects.for_org(a), Specialist.objects.filter(name="SB")))
        with pytest.raises(UnscopedQueryError):
            list(combine(Specialist.objects.filter(name="SB"), Specialist.objects.for_org(a)))
    both = Specialist.objects.for_org(a) | Specialist.objects.for_org(b)
    assert sorted(both.values_list("name", flat=True)) == ["SA", "SB"]  # every part scoped: it runs
    assert list((Specialist.objects.none() | Specialist.objects.for_org(a)).values_list("name", flat=True)) == ["SA"]


def test_any_of_the_org_column_scopes_only_with_named_ids(two):
    """``AnyOf(F("organization_id"), ids)`` names the org as ``organization_id__in=ids`` does; an
    ``OuterRef`` to the outer query's org limits none of this query's rows, and a queryset is no list
    of ids."""
    a, b = two
    assert Specialist.objects.filter(AnyOf(F("organization_id"), [a.pk])).count() == 1
    inner = Specialist.objects.filter(AnyOf(OuterRef("organization_id"), [a.pk])).filter(name="SB")
    with pytest.raises(UnscopedQueryError):
        list(Specialist.objects.for_org(a).filter(name__in=inner.values("name")))
    with pytest.raises(TypeError):
        AnyOf(F("organization_id"), Organization.objects.values_list("pk", flat=True))
    with pytest.raises(UnscopedQueryError):
        Specialist.objects.filter(AnyOf(F("name"), ["SA", "SB"])).count()
    assert Specialist.objects.filter(AnyOf(F("organization_id"), [a.pk, None])).count() == 1  # None left out
