"""A page read as tuples of its model's columns reads them as ``values_list`` of the same columns
would, whether the query's own selection is used (no deferred column) or the columns are named."""

from __future__ import annotations

import pytest
from django.db.models import F, Value
from django.db.models.query import ValuesListIterable

from core.serializers import _column_tuples, _row_shape
from specialists.models import Specialist
from tasks.models import Task
from tests.conftest import make_specialist

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [Specialist, Task])
def test_the_querys_own_columns_are_those_values_list_reads(org, owner, model):
    make_specialist(org, name="A")
    make_specialist(org, name="B")
    Task.objects.create(organization=org, title="T", created_by=owner)
    rows = model.objects.for_org(org).annotate(marker=Value(7), org_ref=F("organization_id")).order_by("pk")
    _, columns = _row_shape(model, ("marker", "org_ref"))
    fast = _column_tuples(rows, columns, frozenset())
    assert fast._iterable_class is ValuesListIterable  # the query's selection, not values_list
    assert list(fast) == list(rows.values_list(*columns))
    assert list(fast)


def test_a_query_that_joins_another_model_names_its_columns(org):
    make_specialist(org, name="A")
    rows = Specialist.objects.for_org(org).select_related("organization")
    _, columns = _row_shape(Specialist)
    named = _column_tuples(rows, columns, frozenset())
    assert named.query.values_select  # values_list: the joined model's columns are not in the row
    assert list(named) == list(rows.values_list(*columns))
