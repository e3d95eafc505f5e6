"""A lighter read path for the serializers of list pages.

DRF's ``Serializer.to_representation`` asks every field of every row for its attribute through the
generic walk (``source_attrs``, mapping or attribute, callables called, errors mapped) and builds
the readable fields again per row. For a field read straight from a model column (its source is the
column's attribute: ``name``, ``created_by_id``) ``PlainReadModelSerializer`` reads the attribute and hands it
to the field's own ``to_representation``; every other field (methods, annotations, dotted sources,
relations) takes DRF's path. The result is the same dict, key for key and in the same order.

A serializer that sets ``pages_read_as_rows`` has its list pages fetched as tuples of the model's
columns (``values_list``, the same query's rows, filters and order) instead of model instances
(``core.pagination`` asks it through ``read_page_rows``): each row is a named tuple with the
columns' attribute names and ``pk``, which the fields and methods read as they read a model's. Such a
row is rendered in one step, camelCase keys included, by a function compiled from the plan
(``core.row_render``).
"""

from __future__ import annotations

import copy
import datetime
import functools
import operator
from collections import namedtuple
from collections.abc import Callable
from typing import ClassVar

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Value
from django.db.models.query import ValuesListIterable
from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework.relations import PKOnlyObject

from core import renderers
from core.row_json import UTC_ZONES, JsonRow, RowJson, annotated, iso_zone, row_json
from core.row_render import RowRenderer, Step, row_renderer

# Fields whose representation of a value of the given type is that value itself.
_IDENTITY = {drf_fields.CharField: str, drf_fields.IntegerField: int, drf_fields.BooleanField: bool}

type _Field = drf_fields.Field[object, object, object, object]
type _Convert = Callable[[object], object]
type _Step = tuple[str, str | None, _Field, _Convert | None]


def _converter(field: _Field) -> _Convert:
    """How a column's non-null value becomes its field's representation: the field's own
    ``to_representation``, skipped where it would give the value back (a ``str`` of a CharField…)
    and, for an ISO 8601 DateTimeField, its steps done with the time zone looked up once."""
    represent = field.to_representation
    if type(field) is drf_fields.UUIDField and field.uuid_format == "hex_verbose":
        return str  # what its to_representation does, without the call through it
    same_type = _IDENTITY.get(type(field))
    if same_type is not None:
        return lambda value: value if type(value) is same_type else represent(value)
    if type(field) is drf_fields.DateTimeField:
        zone = iso_zone(field)
        if zone is not None:
            return functools.partial(_iso_datetime, zone=zone, represent=represent)
    return represent


def _iso_datetime(value: object, *, zone: datetime.tzinfo, represent: _Convert) -> object:
    """``DateTimeField.to_representation`` of an aware datetime in ISO 8601 (``Z`` for UTC); a value
    in UTC (the database's) is written as it is when the field's zone is UTC too."""
    if type(value) is not datetime.datetime:
        return represent(value)
    if value.tzinfo is datetime.UTC and zone in UTC_ZONES:
        return value.isoformat()[:-6] + "Z"  # the same text as converted: no conversion in UTC
    if value.utcoffset() is None:
        return represent(value)
    try:
        text = value.astimezone(zone).isoformat()
    except OverflowError:
        return represent(value)  # the field's own error
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _gives_leaf(field: _Field, convert: _Convert) -> bool:
    """Whether ``convert`` (of ``_converter``) always gives a ``str``, ``int``, ``bool`` or None:
    nothing in it to camelize."""
    if convert is str or type(field) in _IDENTITY:
        return True
    return isinstance(convert, functools.partial) and convert.func is _iso_datetime


_INIT = serializers.ModelSerializer.__init__


def _column_attributes(model: type[models.Model]) -> frozenset[str]:
    return frozenset(field.attname for field in model._meta.concrete_fields)


type _Row = tuple[object, ...]
_ROW_SHAPES: dict[tuple[type[models.Model], tuple[str, ...], frozenset[str]], tuple[type[_Row], tuple[str, ...]]] = {}


def _row_shape(
    model: type[models.Model], annotations: tuple[str, ...] = (), deferred: frozenset[str] = frozenset()
) -> tuple[type[_Row], tuple[str, ...]]:
    """A page's row of ``model`` read through ``values_list``: a named tuple of the model's columns
    (by attribute name, in ``concrete_fields`` order), then the query's annotations, with ``pk`` and
    ``serializable_value`` (what a related field reads of a model), and those columns. A deferred
    column (``deferred``, by attribute name) keeps its place but is not read: reading it from a row
    raises ``AttributeError`` (a model would load it with a query of its own)."""
    shape = _ROW_SHAPES.get((model, annotations, deferred))
    if shape is None:
        columns = (*(field.attname for field in model._meta.concrete_fields), *annotations)
        base = namedtuple(f"{model.__name__}Row", columns)  # type: ignore[misc]  # the names are the model's
        pk_index = columns.index(model._meta.pk.attname) if model._meta.pk is not None else 0
        members: dict[str, object] = {"__slots__": (), "pk": property(operator.itemgetter(pk_index))}
        members["serializable_value"] = _SerializableValue(model)
        members.update({name: property(_not_read(model, name)) for name in deferred})
        row: type[_Row] = type(base.__name__, (base,), members)
        shape = _ROW_SHAPES[(model, annotations, deferred)] = (row, columns)
    return shape


def _not_read(model: type[models.Model], name: str) -> Callable[[_Row], object]:
    def read(row: _Row) -> object:
        raise AttributeError(f"{model.__name__}.{name} was deferred: a page's row does not read it")

    return read


def _deferred_columns(query: models.sql.Query) -> frozenset[str] | None:
    """The attribute names of the columns a query defers (``defer``), or ``None`` when it reads only
    some (``only``) or defers a relation's: such a page is read as models."""
    names, defers = query.deferred_loading
    if not names:
        return frozenset()
    if not defers or any("__" in name for name in names):
        return None
    meta = query.get_meta()
    return frozenset(meta.get_field(name).attname for name in names)  # type: ignore[union-attr]  # concrete fields


class _SerializableValue:
    """``Model.serializable_value`` of a row: a relation's name reads its column (``created_by`` →
    ``created_by_id``), any other name itself."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model

    def __get__(self, row: _Row, owner: type | None = None) -> Callable[[str], object]:
        def serializable_value(name: str) -> object:
            try:
                field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                return getattr(row, name)
            return getattr(row, getattr(field, "attname", name))

        return serializable_value


def _column_tuples(
    rows: models.QuerySet[models.Model], columns: tuple[str, ...], deferred: frozenset[str]
) -> models.QuerySet[models.Model, tuple[object, ...]]:
    """The page's rows as tuples of ``columns``. A query that selects the model's own columns (no
    ``values``, ``select_related``, ``extra`` or deferred column) already selects exactly those, in
    that order (Django's default columns are ``concrete_fields``, then the annotations): its rows are
    read as tuples as they are, without ``values_list`` naming and resolving each column again."""
    query = rows.query
    if deferred or rows._fields or query.select_related or query.extra_select or not query.default_cols:  # type: ignore[attr-defined]  # Django's own
        fields = {field.attname: field for field in rows.model._meta.concrete_fields}
        selected = [Value(None, fields[column]) if column in deferred else column for column in columns]  # unread
        return rows.values_list(*selected)
    as_tuples: models.QuerySet[models.Model, tuple[object, ...]] = rows._chain()  # type: ignore[attr-defined]  # Django's clone
    as_tuples._iterable_class = ValuesListIterable  # what values_list() sets
    return as_tuples


def _tuples(rows: models.QuerySet[models.Model], deferred: frozenset[str]) -> list[_Row]:
    row, columns = _row_shape(rows.model, tuple(rows.query.annotation_select), deferred)
    new = tuple.__new__
    return [new(row, values) for values in _column_tuples(rows.prefetch_related(None), columns, deferred)]


def _json_or_tuples(
    rows: models.QuerySet[models.Model], written: RowJson, deferred: frozenset[str]
) -> list[JsonRow | _Row]:
    """A page's rows as JSON text, but those PostgreSQL would write otherwise (``RowJson.guarded``:
    their text is null), read again as tuples by the same query (its filters and annotations) and
    written by Python, each in its place."""
    found = list(rows.prefetch_related(None).values_list("pk", written))
    left = [pk for pk, text in found if text is None]
    if not left:
        return [JsonRow(text) for _, text in found]
    again = rows._chain()  # type: ignore[attr-defined]  # Django's clone
    again.query.clear_limits()
    by_pk = {row.pk: row for row in _tuples(again.filter(pk__in=left), deferred)}  # type: ignore[attr-defined]  # a row's pk
    return [  # a row gone between the two statements (deleted meanwhile) is left out, as if read after
        JsonRow(text) if text is not None else by_pk[pk] for pk, text in found if text is not None or pk in by_pk
    ]


def _reads_whole_rows(rows: models.QuerySet[models.Model]) -> bool:
    """A page's query whose rows are its model's (not distinct values, a union or a values query):
    selecting one expression instead of its columns keeps its rows."""
    return not rows.query.distinct and not rows.query.combinator and not rows._fields  # type: ignore[attr-defined]  # Django's own


class PlainReadModelSerializer[M: models.Model](serializers.ModelSerializer[M]):
    """A ``ModelSerializer`` whose reads render through a plan (a list's child serves every row of
    its page). The plan is made once per class when the fields cannot vary from one instance to
    the next (``get_fields`` and ``__init__`` are DRF's): an instance then builds no fields, only
    binds a copy of those read through DRF's path (methods, relations); otherwise once per
    instance."""

    pages_read_as_rows: ClassVar[bool] = False  # a list page's rows fetched as column tuples
    # A method field a list page answers from its query's annotation: {field: (annotation, kind)},
    # the kind one of ``core.row_json.ANNOTATION_WRITERS`` (a page's rows then written as JSON text).
    page_annotations: ClassVar[dict[str, tuple[str, str]]] = {}

    @classmethod
    def read_page_rows(cls, rows: models.QuerySet[M]) -> list[_Row] | list[JsonRow] | list[JsonRow | _Row] | None:
        """A page's rows as named tuples of their columns (``None``: read them as models), fetched
        by the page's own query (filters, org scope, order and slice as they are); each row's JSON
        text instead, written by PostgreSQL, when every field is a column it writes as DRF does
        (``core.row_json``)."""
        if not cls.pages_read_as_rows or rows.model is not cls.Meta.model or rows.query.group_by is not None:
            return None  # another model's page, or one grouped by an aggregate: read as models
        deferred = _deferred_columns(rows.query)
        if deferred is None or deferred & cls._named_columns():
            return None  # a column the fields name (or the key) deferred: models load it as Django does
        written = cls._row_json()
        if written is not None and _reads_whole_rows(rows) and written.reads(rows.query):
            if written.guarded:
                return _json_or_tuples(rows, written, deferred)
            texts = list(rows.prefetch_related(None).values_list(written, flat=True))
            if None in texts:  # a value PostgreSQL cannot write (an infinite time): the page left to Python
                return _tuples(rows, deferred)
            return [JsonRow(text) for text in texts]
        return _tuples(rows, deferred)

    @classmethod
    def _row_json(cls) -> RowJson | None:
        """The expression of a page's row as JSON text (``core.row_json``), or None: made once per
        class, for a serializer whose fields cannot vary (DRF's ``get_fields`` and ``__init__``)
        and whose rows are represented here and listed by DRF's own list serializer."""
        if "_row_json_found" not in cls.__dict__:
            found = None
            if (
                cls.get_fields is serializers.ModelSerializer.get_fields
                and cls.__init__ is _INIT
                and cls.to_representation is PlainReadModelSerializer.to_representation
                and getattr(cls.Meta, "list_serializer_class", None) is None
            ):
                _, columns = _row_shape(cls.Meta.model)
                steps: list[tuple[str, str, _Field, str | None]] = []
                for name, index, field, convert in cls()._row_plan():
                    key = renderers.camel_key(name)[0]
                    annotation = None if convert is not None else annotated(field)
                    if convert is not None and index is not None:
                        steps.append((key, columns[index], field, None))
                    elif annotation is not None and annotation[0] not in columns:
                        steps.append((key, annotation[0], field, annotation[1]))
                    elif name in cls.page_annotations:
                        annotation_name, kind = cls.page_annotations[name]
                        steps.append((key, annotation_name, field, kind))
                    else:
                        break
                else:
                    found = row_json(cls.Meta.model, steps)
            cls._row_json_found = found  # type: ignore[attr-defined]  # per class, never inherited
        written: RowJson | None = cls.__dict__["_row_json_found"]
        return written

    @classmethod
    def _named_columns(cls) -> frozenset[str]:
        """The columns this serializer's fields name (by attribute name), and the primary key."""
        found: frozenset[str] | None = cls.__dict__.get("_named_columns_found")
        if found is None:
            model: type[models.Model] = cls.Meta.model
            meta = model._meta
            names = {*getattr(cls.Meta, "fields", ())}
            for key, field in cls._declared_fields.items():
                names.add(key if field.source in (None, "*") else str(field.source).split(".", 1)[0])
            columns = {field.name: field.attname for field in meta.concrete_fields}
            columns.update({field.attname: field.attname for field in meta.concrete_fields})
            pk = meta.pk.attname if meta.pk is not None else "id"
            found = frozenset({columns[name] for name in names if name in columns} | {pk})
            cls._named_columns_found = found  # type: ignore[attr-defined]  # per class, never inherited
        return found

    def _row_plan(self) -> list[tuple[str, int | None, _Field, _Convert | None]]:
        """The read plan with each column read by its index in the row."""
        plan: list[tuple[str, int | None, _Field, _Convert | None]] | None = self.__dict__.get("_plan_by_index")
        if plan is None:
            _, columns = _row_shape(self.Meta.model)
            plan = [
                (name, None if attribute is None else columns.index(attribute), field, convert)
                for name, attribute, field, convert in self._read_plan()
            ]
            self.__dict__["_plan_by_index"] = plan
        return plan

    def _read_plan(self) -> list[_Step]:
        plan: list[_Step] | None = self.__dict__.get("_plan")
        if plan is None:
            cls = type(self)
            if cls.get_fields is not serializers.ModelSerializer.get_fields or cls.__init__ is not _INIT:
                plan = self._plan_of_own_fields()
            else:
                shared: list[_Step] | None = cls.__dict__.get("_class_plan")
                if shared is None:
                    shared = self._plan_of_own_fields()
                    cls._class_plan = shared  # type: ignore[attr-defined]  # per class, never inherited
                plan = [step if step[3] is not None else self._bound(step) for step in shared]
            self.__dict__["_plan"] = plan
        return plan

    def _bound(self, step: _Step) -> _Step:
        """A step read through DRF's path, with its own copy of the field bound to this instance
        (as ``fields`` binds it: a method field finds its method, a field its context)."""
        name, _, field, _ = step
        own = copy.deepcopy(field)
        own.bind(field_name=name, parent=self)
        return (name, None, own, None)

    def _plan_of_own_fields(self) -> list[_Step]:
        columns = _column_attributes(self.Meta.model)
        plan: list[_Step] = []
        for field in self._readable_fields:
            source = field.source_attrs[0] if len(field.source_attrs) == 1 else None
            direct = (
                source in columns
                and type(field).get_attribute is drf_fields.Field.get_attribute
                and not isinstance(field, serializers.SerializerMethodField)
            )
            convert = _converter(field) if direct else None
            plan.append((str(field.field_name), source if direct else None, field, convert))
        return plan

    def to_representation(self, instance: M) -> dict[str, object]:
        row: object = instance
        if type(row) is JsonRow:
            return row  # type: ignore[return-value]  # the row's JSON, written by PostgreSQL (core.row_json)
        if isinstance(instance, tuple):
            return self._represent_row(instance)
        if not isinstance(instance, models.Model):
            return super().to_representation(instance)
        rendered: dict[str, object] = {}
        for name, attribute, field, convert in self._read_plan():
            if convert is not None:
                value = getattr(instance, attribute)  # type: ignore[arg-type]  # set with convert
                rendered[name] = None if value is None else convert(value)
                continue
            _represent_field(rendered, name, field, instance)
        return rendered

    def _represent_row(self, row: _Row) -> dict[str, object]:
        """``to_representation`` of a page's row (``read_page_rows``), camelCase keys included:
        rendered by the function compiled from this serializer's plan."""
        render: RowRenderer | None = self.__dict__.get("_row_renderer")
        if render is None:
            steps = []
            for name, index, field, convert in self._row_plan():
                key, keep = renderers.camel_key(name)
                leaf = convert is not None and _gives_leaf(field, convert)
                steps.append(Step(key=key, keep=keep, index=index, convert=convert, field=field, leaf=leaf))
            render = self.__dict__["_row_renderer"] = row_renderer(steps, camelize=renderers.camelize)
        return render(row)


def _represent_field(rendered: dict[str, object], name: str, field: _Field, source: object) -> None:
    """``field`` of ``source`` (a model instance or a page's row) into ``rendered``, as DRF's
    ``to_representation`` writes a field without a plan: a skipped field is left out, None stays None."""
    try:
        value = field.get_attribute(source)
    except drf_fields.SkipField:
        return
    checked = value.pk if isinstance(value, PKOnlyObject) else value
    rendered[name] = None if checked is None else field.to_representation(value)
