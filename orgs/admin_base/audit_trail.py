"""What an operator's change writes: an entry of the audit trail (who, when, what, why) and a line of
the admin's own history; the reason every audited form asks for, and the changes a form makes, old
and new, secrets left out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

from django import forms
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from orgs.models import AuditEntry, Organization

REASON = "audit_reason"  # the form field every audited change and delete asks for
SECRET = "(secret: not recorded)"  # noqa: S105  # what the trail says instead of a secret


def reason_field() -> forms.CharField:
    return forms.CharField(
        label="Reason for this change",
        max_length=500,
        help_text="Goes into the audit trail with who changed what and when.",
    )


def _plain(value: object) -> object:
    """A form value as the audit trail keeps it: records by id, lists as lists."""
    if isinstance(value, Model):
        return str(value.pk)
    if isinstance(value, QuerySet | list | tuple | set):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | bool | int | float | Decimal | date | datetime | uuid.UUID):
        return value
    return str(value)


def form_changes(form: forms.BaseForm, *, add: bool, secret: frozenset[str] = frozenset()) -> dict[str, object]:
    """``{field: {"old": …, "new": …}}`` of what the form changes (of every field it sets, for an
    addition); a secret shows only that it changed."""
    data = getattr(form, "cleaned_data", {})
    names = list(form.fields) if add else form.changed_data
    changes: dict[str, object] = {}
    for name in names:
        if name == REASON or name not in data:
            continue
        if name in secret:
            if data[name]:
                changes[name] = SECRET
            continue
        old = None if add else _plain(form.initial.get(name))
        new = _plain(data[name])
        if not add or new not in (None, "", []):
            changes[name] = {"old": old, "new": new}
    return changes


def record(
    request: HttpRequest,
    *,
    action: str,
    obj: Model | None,
    org: Organization | None,
    reason: str = "",
    details: Mapping[str, object] | None = None,
    log_on: Model | None = None,
    log: bool = True,
) -> AuditEntry:
    """One operator change in the audit trail (who, when, what, why) and in the admin's own log
    (the history of ``log_on``, by default the object itself; not with ``log=False``, when the admin
    writes that history itself)."""
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
    if log and user is not None and target is not None:
        message = f"{action}" + (f": {reason}" if reason else "")
        if details:
            message += " (" + ", ".join(f"{key} {value}" for key, value in details.items()) + ")"
        LogEntry.objects.log_actions(user.pk, [target], CHANGE, message[:2000], single_object=True)
    return entry
