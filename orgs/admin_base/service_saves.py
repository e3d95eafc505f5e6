"""What an admin page needs to save through an app's service: the operator's org context, the values
a form changes, the record as it is stored."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Model

from orgs.context import OrgContext
from orgs.models import Organization


def operator_context(org: Organization) -> OrgContext:
    """An operator acting in an organization: platform staff, who pass the services' role checks."""
    return OrgContext(org=org, membership=None, is_staff=True, in_admin=True)


# A form's cleaned data: each value of its field's type (Django's own ``cleaned_data``).
type CleanedData = dict[str, Any]


def changed_values(form: forms.BaseForm, names: tuple[str, ...] | frozenset[str]) -> CleanedData:
    """The cleaned values of the fields the form changes, among ``names`` (what a service's update takes)."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in names and name in form.cleaned_data}


def stored[M: Model](form: forms.ModelForm[M]) -> M:
    """The record as it is in the database (the form's instance already carries the new values)."""
    instance = form.instance
    return type(instance)._default_manager.get(pk=instance.pk)
