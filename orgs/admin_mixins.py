"""What every admin page of an org-owned record enforces, as the API does: the record never moves to
another organization, and whatever it points to (a specialist, tools, a workspace, a user) is of
its own organization."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from accounts.models import User
from core.credits import q
from orgs.models import AuditEntry, Membership, Organization


def _owned(model: type[Model]) -> bool:
    return any(field.name == "organization" for field in model._meta.get_fields())


def _values(value: Any) -> list[Any]:
    if isinstance(value, QuerySet | list | tuple):
        return list(value)
    return [value] if value is not None else []


class OrgOwnedAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):  # noqa: ANN001, ANN201
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "organization"] if obj is not None and "organization" not in fields else fields

    def get_form(self, request, obj=None, change=False, **kwargs):  # noqa: ANN001, ANN003, ANN201
        form = super().get_form(request, obj, change=change, **kwargs)
        org_id = getattr(obj, "organization_id", None)

        class OrgScopedForm(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, **kw)
                for field in self.fields.values():
                    queryset = getattr(field, "queryset", None)
                    if org_id and queryset is not None and _owned(queryset.model):
                        field.queryset = queryset.filter(organization_id=org_id)

            def clean(self) -> dict[str, Any]:
                data = super().clean()
                org = data.get("organization") if isinstance(data.get("organization"), Organization) else None
                org_pk = org.pk if org else org_id
                if org_pk is None:
                    return data
                for name, value in list(data.items()):  # add_error drops the field from data
                    if name not in self.changed_data:  # what is already stored stays (a creator who left)
                        continue
                    for item in _values(value):
                        if isinstance(item, User):
                            if not Membership.objects.filter(organization_id=org_pk, user=item).exists():
                                self.add_error(name, f"{item} is not a member of this organization.")
                        elif isinstance(item, Model) and _owned(type(item)) and item.organization_id != org_pk:  # type: ignore[attr-defined]
                            self.add_error(name, f"{item} belongs to another organization.")
                return data

        return OrgScopedForm


class ReadOnlyAdmin(admin.ModelAdmin):
    """History: operators read it; it is never added, edited or deleted in the admin."""

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


def credits_text(value: Decimal | int | str | None) -> str:
    """Credits as operators read them: grouped, six places, with the unit ("1,234.500000 credits")."""
    if value is None:
        return "-"
    return f"{q(value):,.6f} credits"


def record(
    request: HttpRequest,
    *,
    action: str,
    obj: Model | None,
    org: Organization | None,
    reason: str = "",
    details: dict[str, Any] | None = None,
    log_on: Model | None = None,
) -> AuditEntry:
    """One operator change in the audit trail (who, when, what, why) and in the admin's own log
    (the history of ``log_on``, by default the object itself)."""
    user = request.user if request.user.is_authenticated else None
    entry = AuditEntry.objects.create(
        actor=user,
        organization=org,
        action=action,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        reason=reason[:500],
        details=json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder)),
    )
    target = log_on if log_on is not None else obj
    if user is not None and target is not None:
        message = f"{action}" + (f": {reason}" if reason else "")
        if details:
            message += " (" + ", ".join(f"{key} {value}" for key, value in details.items()) + ")"
        LogEntry.objects.log_actions(user.pk, [target], CHANGE, message[:2000], single_object=True)
    return entry


class LabelledAdmin(admin.ModelAdmin):
    """A change page headed by ``object_label(obj)`` (names, not the ids a model's ``__str__`` shows)."""

    def object_label(self, obj: Model) -> str:
        return str(obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):  # noqa: ANN001, ANN201, PLR0917
        if obj is not None:
            context["subtitle"] = self.object_label(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)
