"""A page's row rendered in one step (``core.row_render``, through ``PlainReadModelSerializer``): the
same dict as DRF's walk followed by the camelCase renderer, and passed through by the renderer."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import camelize as library_camelize
from rest_framework import serializers

from core import renderers
from core.fields import CreditField
from core.row_render import CamelCasedRow
from core.serializers import PlainReadModelSerializer, _row_shape
from tasks.models import Task


class _TaskRows(PlainReadModelSerializer[Task]):
    """Every kind of step: columns with a leaf converter, a choice and a decimal (other converters),
    a method field that may be skipped or give nested data, and a key whose value is kept."""

    pages_read_as_rows = True
    result = serializers.SerializerMethodField()  # ``result`` is a kept key: its data is never re-cased
    nested_data = serializers.SerializerMethodField()
    cost = CreditField(source="priority", read_only=True)
    maybe = serializers.CharField(source="not_a_column", read_only=True)  # absent: skipped

    class Meta:
        model = Task
        fields = ["id", "title", "status", "due_date", "created_at", "result", "nested_data", "cost", "maybe"]

    def get_result(self, row: object) -> dict[str, object]:
        return {"kept_key": [{"inner_key": 1}]}

    def get_nested_data(self, row: object) -> dict[str, object]:
        return {"inner_key": [{"deep_key": None}], "plain": "a_b"}


def _row(**values: object) -> tuple[object, ...]:
    shape, columns = _row_shape(Task)
    defaults = dict.fromkeys(columns)
    defaults.update(values)
    return tuple.__new__(shape, [defaults[column] for column in columns])


@pytest.mark.parametrize(
    "values",
    [
        {
            "id": uuid.uuid4(),
            "title": "T",
            "status": "todo",
            "priority": 2,
            "created_at": datetime.datetime.now(datetime.UTC),
        },
        {"id": uuid.uuid4(), "title": None, "status": None, "priority": None, "created_at": None},
        {
            "id": uuid.uuid4(),
            "title": "Ünïcode \u2028",
            "status": "done",
            "priority": 0,
            "due_date": datetime.date(2026, 12, 7),
            "created_at": datetime.datetime(
                2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
            ),
        },
    ],
)
def test_a_row_is_the_dict_the_generic_walk_and_the_renderer_make(values):
    row = _row(**values)
    serializer = _TaskRows()
    rendered = serializer.to_representation(row)
    generic = library_camelize(
        serializers.ModelSerializer.to_representation(_TaskRows(), row), **api_settings.JSON_UNDERSCOREIZE
    )
    assert type(rendered) is CamelCasedRow
    assert list(rendered.items()) == list(generic.items())
    assert "maybe" not in rendered  # a skipped field is left out
    assert rendered["result"] == {"kept_key": [{"inner_key": 1}]}  # a kept key's value as it is
    assert rendered["nestedData"] == {"innerKey": [{"deepKey": None}], "plain": "a_b"}
    body = renderers.CachedCamelCaseJSONRenderer().render({"results": [rendered]})
    assert body == renderers.CamelCaseJSONRenderer().render(
        {"results": [serializers.ModelSerializer.to_representation(_TaskRows(), row)]}
    )


def test_the_renderer_passes_a_rendered_row_through():
    row = CamelCasedRow(snake_key={"inner_key": 1})
    assert renderers.camelize([row])[0] is row


def test_each_serializer_instance_binds_its_own_fields_to_one_compiled_shape():
    first, second = _TaskRows(), _TaskRows()
    row = _row(id=uuid.uuid4(), title="x", priority=Decimal(1))
    assert first.to_representation(row) == second.to_representation(row)
    assert first.__dict__["_row_renderer"] is not second.__dict__["_row_renderer"]
    assert first.__dict__["_row_renderer"].__code__ is second.__dict__["_row_renderer"].__code__
