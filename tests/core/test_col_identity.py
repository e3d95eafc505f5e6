"""A column's identity (its hash and equality) is Django's, built without ``inspect``."""

from __future__ import annotations

from django.apps import apps
from django.db.models.expressions import Col, Expression

from core.col_identity import col_identity


def test_every_column_of_every_model_has_djangos_identity():
    djangos = Expression.identity.func
    compared = 0
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            for col in (
                Col(model._meta.db_table, field),
                Col("T3", field, output_field=field),
                Col(None, field, field),
                Col(alias="x", target=field),
            ):
                assert col_identity(col) == djangos(col)
                assert col.identity == djangos(col)  # installed at app loading
                compared += 1
    assert compared > 500


def test_equal_columns_hash_alike_and_others_do_not():
    from tasks.models import Task

    title, status = Task._meta.get_field("title"), Task._meta.get_field("status")
    assert Col("t", title) == Col("t", title)
    assert hash(Col("t", title)) == hash(Col("t", title))
    assert Col("t", title) != Col("u", title)
    assert Col("t", title) != Col("t", status)
