"""``OrgOwnedAdmin``: an org-owned record never moves to another organization, and whatever it points
to (a specialist, tools, a workspace, a user) is of its own organization."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from accounts.models import User
from orgs.admin_base.audited import AuditedAdmin
from orgs.models import Membership, Organization


def _owned(model: type[Model]) -> bool:
    return any(field.name == "organization" for field in model._meta.get_fields())


def _values(value: object) -> list[object]:
    if isinstance(value, QuerySet | list | tuple):
        return list(value)
    return [value] if value is not None else []


class OrgOwnedAdmin[M: Model](AuditedAdmin[M]):
    def get_readonly_fields(self, request: HttpRequest, obj: M | None = None) -> list[str]:
        """Once a record exists, its organization and who created it stay as they are."""
        fields = list(super().get_readonly_fields(request, obj))
        if obj is None:
            return fields
        stays = [name for name in ("organization", "created_by") if hasattr(obj, f"{name}_id")]
        return [*fields, *(name for name in stays if name not in fields)]

    def get_form(
        self, request: HttpRequest, obj: M | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[M]]:  # ``kwargs``: ModelAdmin's, handed on
        form = super().get_form(request, obj, change=change, **kwargs)
        org_id = getattr(obj, "organization_id", None)

        class OrgScopedForm(form):  # type: ignore[misc, valid-type]  # a class made at run time
            def __init__(self, *args: object, **kw: object) -> None:
                super().__init__(*args, **kw)
                for field in self.fields.values():
                    queryset = getattr(field, "queryset", None)
                    if org_id and queryset is not None and _owned(queryset.model):
                        field.queryset = queryset.filter(organization_id=org_id)

            def clean(self) -> dict[str, object]:
                data: dict[str, object] = super().clean()
                chosen = data.get("organization")
                org = chosen if isinstance(chosen, Organization) else None
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
                        elif (
                            isinstance(item, Model)
                            and _owned(type(item))
                            and getattr(item, "organization_id", None) != org_pk
                        ):
                            self.add_error(name, f"{item} belongs to another organization.")
                return data

        return OrgScopedForm
