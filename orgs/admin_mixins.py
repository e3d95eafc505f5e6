"""What every admin page enforces. An audited page (``AuditedAdmin``) asks a reason for every add,
change and delete, saves through the app's services where they exist (their rules hold, their
errors show on the form), and writes the audit trail and the admin's history. An org-owned record
(``OrgOwnedAdmin``) never moves to another organization, and whatever it points to (a specialist,
tools, a workspace, a user) is of its own organization."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import flatten_fieldsets
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse

from accounts.models import User
from core.credits import q
from core.errors import DomainError
from orgs.context import OrgContext
from orgs.models import AuditEntry, Membership, Organization

REASON = "audit_reason"  # the form field every audited change and delete asks for
SECRET = "(secret: not recorded)"  # noqa: S105  # what the trail says instead of a secret
UNCHANGED = "No fields changed."  # Django's words for a save that changes nothing


def _owned(model: type[Model]) -> bool:
    return any(field.name == "organization" for field in model._meta.get_fields())


def _values(value: Any) -> list[Any]:
    if isinstance(value, QuerySet | list | tuple):
        return list(value)
    return [value] if value is not None else []


def operator_context(org: Organization) -> OrgContext:
    """An operator acting in an organization: platform staff, who pass the services' role checks."""
    return OrgContext(org=org, membership=None, is_staff=True, in_admin=True)


def reason_field() -> forms.CharField:
    return forms.CharField(
        label="Reason for this change",
        max_length=500,
        help_text="Goes into the audit trail with who changed what and when.",
    )


def _plain(value: Any) -> Any:
    """A form value as the audit trail keeps it: records by id, lists as lists."""
    if isinstance(value, Model):
        return str(value.pk)
    if isinstance(value, QuerySet | list | tuple | set):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | bool | int | float | Decimal | date | datetime | uuid.UUID):
        return value
    return str(value)


def form_changes(form: forms.BaseForm, *, add: bool, secret: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``{field: {"old": …, "new": …}}`` of what the form changes (of every field it sets, for an
    addition); a secret shows only that it changed."""
    data = getattr(form, "cleaned_data", {})
    names = list(form.fields) if add else form.changed_data
    changes: dict[str, Any] = {}
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


def changed_values(form: forms.BaseForm, names: tuple[str, ...] | frozenset[str]) -> dict[str, Any]:
    """The cleaned values of the fields the form changes, among ``names`` (what a service's update takes)."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in names and name in form.cleaned_data}


def stored(form: forms.ModelForm) -> Any:
    """The record as it is in the database (the form's instance already carries the new values)."""
    instance = form.instance
    return type(instance)._default_manager.get(pk=instance.pk)


class _DryRun(Exception):
    """Rolls back a service's write that only checked the form."""


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", key).lower()


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete asks for a reason (``audit_reason``), goes through the app's
    service where one writes the record (``service_save``/``service_delete``: the service's errors show
    on the form, checked by running it in a rolled-back savepoint while the form validates), and is
    written to the audit trail (``<model>_added``/``_changed``/``_deleted`` with the changed fields'
    old and new values, secrets left out) and to the admin's history with its reason. A save that
    changes nothing writes neither (the operator is told "No fields changed."). An action that
    changes things asks its reason on a page of its own first (``form_action``)."""

    audit_secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"password", "password1", "password2", "token", "header_name", "credentials_encrypted"}
    )
    service_error_fields: ClassVar[dict[str, str]] = {}  # a service's error key -> the form's field
    delete_confirmation_template = "admin/audited_delete_confirmation.html"
    delete_selected_confirmation_template = "admin/audited_delete_selected_confirmation.html"

    # --- what the app's services do (by default: the ORM, as ModelAdmin does) ---

    def service_save(self, request: HttpRequest, form: forms.ModelForm, change: bool) -> Model | None:
        """Writes the form's record through the app's service and returns it; None: no service
        writes this record, the ORM does."""
        return None

    def service_delete(self, request: HttpRequest, obj: Model) -> None:
        obj.delete()

    def audit_org(self, obj: Model) -> Organization | None:
        if isinstance(obj, Organization):
            return obj
        org = getattr(obj, "organization", None)
        return org if isinstance(org, Organization) else None

    def audit_name(self, obj: Model) -> str:
        return obj._meta.model_name or type(obj).__name__.lower()

    # --- the form: a reason, and the service's rules as form errors ---

    def _editable(self, request: HttpRequest, obj: Model | None) -> bool:
        return self.has_add_permission(request) if obj is None else self.has_change_permission(request, obj)

    def get_fieldsets(self, request, obj=None):  # noqa: ANN001, ANN201
        return self.with_reason(request, obj, super().get_fieldsets(request, obj))

    def with_reason(self, request: HttpRequest, obj: Model | None, fieldsets: Any) -> list[Any]:
        """The page's fieldsets, then the reason (when the page may save)."""
        kept = [(name, {**opts, "fields": [f for f in opts["fields"] if f != REASON]}) for name, opts in fieldsets]
        if not self._editable(request, obj):
            return kept
        return [*kept, ("Audit trail", {"fields": [REASON]})]

    def get_form(self, request, obj=None, change=False, **kwargs):  # noqa: ANN001, ANN003, ANN201
        fields = kwargs["fields"] if "fields" in kwargs else flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = None if fields is None else [f for f in fields if f != REASON]
        form = super().get_form(request, obj, change=change, **kwargs)
        modeladmin = self

        class AuditedForm(form):  # type: ignore[misc, valid-type]
            audit_reason = reason_field()

            def _post_clean(self) -> None:
                super()._post_clean()
                if not self._errors:
                    modeladmin._check_with_service(request, self)

        return AuditedForm

    def _check_with_service(self, request: HttpRequest, form: forms.ModelForm) -> None:
        try:
            with transaction.atomic():
                self.service_save(request, form, not form.instance._state.adding)
                raise _DryRun
        except _DryRun:
            pass
        except DomainError as exc:
            self._add_service_errors(form, exc)

    def _add_service_errors(self, form: forms.BaseForm, exc: DomainError) -> None:
        errors = exc.extra.get("errors")
        if not isinstance(errors, dict) or not errors:
            form.add_error(None, str(exc.detail))
            return
        for key, found in errors.items():
            snake = _snake(str(key))
            candidates = [self.service_error_fields.get(str(key)), snake, snake.removesuffix("_id")]
            name = next((c for c in candidates if c and c in form.fields), None)
            for message in found if isinstance(found, list) else [found]:
                form.add_error(name, str(message))

    # --- saving, and what is written about it ---

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        saved = self.service_save(request, form, change)
        if saved is None:
            super().save_model(request, obj, form, change)
            return
        form._saved_by_service = True  # its many-to-many fields too
        obj.pk = saved.pk
        obj.refresh_from_db()  # what the service stored (e.g. a status it reset)
        obj._state.adding = False

    def save_related(self, request, form, formsets, change) -> None:  # noqa: ANN001
        if getattr(form, "_saved_by_service", False):
            for formset in formsets:
                self.save_formset(request, form, formset, change=change)
        else:
            super().save_related(request, form, formsets, change)
        obj = form.instance
        reason = form.cleaned_data.get(REASON, "")
        details = form_changes(form, add=not change, secret=self.audit_secret_fields)
        if change and not details and not _formsets_changed(formsets):
            request._audit_unchanged = True  # nothing to record, nor a history row
            return
        if details or not change:  # (not when only its inline records changed: they are written below)
            record(
                request,
                action=f"{self.audit_name(obj)}_{'changed' if change else 'added'}",
                obj=obj,
                org=self.audit_org(obj),
                reason=reason,
                details=details,
                log=False,  # the admin's own log_addition/log_change writes its history, with the reason
            )
        for formset in formsets:
            self._audit_inline(request, formset, reason, org=self.audit_org(obj))

    def _audit_inline(self, request: HttpRequest, formset: Any, reason: str, *, org: Organization | None) -> None:
        deleted = set(map(id, getattr(formset, "deleted_forms", [])))
        for inline in formset.forms:
            if id(inline) in deleted:
                continue
            if not inline.has_changed() or inline.instance._state.adding:  # unsaved (UUID pks are set early)
                continue
            add = not inline.initial  # an extra form: a new record
            record(
                request,
                action=f"{self.audit_name(inline.instance)}_{'added' if add else 'changed'}",
                obj=inline.instance,
                org=org,
                reason=reason,
                details=form_changes(inline, add=add, secret=self.audit_secret_fields),
            )
        for obj in getattr(formset, "deleted_objects", []):
            record(request, action=f"{self.audit_name(obj)}_deleted", obj=obj, org=org, reason=reason, log=False)

    def log_change(self, request, obj, message) -> LogEntry | None:  # type: ignore[override]  # noqa: ANN001
        if getattr(request, "_audit_unchanged", False):
            return None
        return super().log_change(request, obj, message)

    def message_user(self, request, message, level=messages.INFO, extra_tags="", fail_silently=False) -> None:  # noqa: ANN001
        """A save that changed nothing says so (and is neither in the trail nor in the history)."""
        if getattr(request, "_audit_unchanged", False) and level == messages.SUCCESS:
            message, level = f"{UNCHANGED} Nothing was recorded.", messages.INFO
        super().message_user(request, message, level, extra_tags, fail_silently)

    def construct_change_message(self, request, form, formsets, add=False):  # noqa: ANN001, ANN201
        message = super().construct_change_message(request, form, formsets, add)
        reason = getattr(form, "cleaned_data", {}).get(REASON)
        if not reason:
            return message
        text = LogEntry(change_message=json.dumps(message)).get_change_message() if message else ""
        return f"{text} Reason: {reason}".strip()

    # --- deleting: a reason on the confirmation page, the service, the trail ---

    def _reason_to_delete(self, request: HttpRequest) -> str | None:
        """The reason of a confirmed deletion; None (and the confirmation page again) without one."""
        reason = request.POST.get(REASON, "").strip()
        if request.POST.get("post") and not reason:
            self.message_user(request, "Give a reason for the deletion: it goes into the audit trail.", messages.ERROR)
        if reason:
            request._audit_reason = reason  # type: ignore[attr-defined]
            return reason
        return None

    def delete_view(self, request, object_id, extra_context=None) -> HttpResponse:  # noqa: ANN001
        if request.method == "POST" and self._reason_to_delete(request) is None:
            request.POST = QueryDict(mutable=True)  # the confirmation page again
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):  # noqa: ANN001, ANN201
        actions = super().get_actions(request, action_location=action_location)
        found = actions.get("delete_selected")
        if found is not None:
            actions["delete_selected"] = dataclasses.replace(found, func=_audited_delete_selected)
        return actions

    def log_deletions(self, request, queryset) -> list[LogEntry]:  # noqa: ANN001
        """Written per object with its deletion (``_delete_audited``): a deletion a service refuses is
        not in the history."""
        return []

    def delete_model(self, request, obj) -> None:  # noqa: ANN001
        self._delete_audited(request, obj)

    def delete_queryset(self, request, queryset) -> None:  # noqa: ANN001
        for obj in queryset:
            self._delete_audited(request, obj)

    def _delete_audited(self, request: HttpRequest, obj: Model) -> bool:
        reason = getattr(request, "_audit_reason", "") or "deleted in the admin"
        user_id = request.user.pk
        assert user_id is not None  # the admin's pages need a signed-in operator
        try:
            with transaction.atomic():
                record(
                    request,
                    action=f"{self.audit_name(obj)}_deleted",
                    obj=obj,
                    org=self.audit_org(obj),
                    reason=reason,
                    log=False,
                )
                LogEntry.objects.log_actions(
                    user_id, [obj], DELETION, change_message=f"Deleted. Reason: {reason}", single_object=True
                )
                self.service_delete(request, obj)
        except DomainError as exc:
            self.message_user(request, f"{obj} was kept: {exc.detail}", messages.ERROR)
            return False
        return True


def _formsets_changed(formsets: Iterable[Any]) -> bool:
    return any(
        getattr(formset, name, None)
        for formset in formsets
        for name in ("new_objects", "changed_objects", "deleted_objects")
    )


def _audited_delete_selected(modeladmin, request, queryset) -> HttpResponse | None:  # noqa: ANN001
    """Django's bulk delete, once the confirmation page gave a reason."""
    if request.POST.get("post") and modeladmin._reason_to_delete(request) is None:
        request.POST = request.POST.copy()
        request.POST.pop("post")
    return delete_selected(modeladmin, request, queryset)


class OrgOwnedAdmin(AuditedAdmin):
    def get_readonly_fields(self, request, obj=None):  # noqa: ANN001, ANN201
        """Once a record exists, its organization and who created it stay as they are."""
        fields = list(super().get_readonly_fields(request, obj))
        if obj is None:
            return fields
        stays = [name for name in ("organization", "created_by") if hasattr(obj, f"{name}_id")]
        return [*fields, *(name for name in stays if name not in fields)]

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


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Goes into the audit trail with who did what and when.")


def form_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    title: str,
    apply: Callable[[Any, dict[str, Any], HttpRequest], object],
    form_class: type[forms.Form] = ReasonForm,
    label: Callable[[Any], str] = str,
) -> HttpResponse:
    """An admin action that asks for a form first (a reason, an amount…) on a page of its own, then
    applies it to each selected row (``apply(obj, cleaned_data, request)``, which writes the audit
    trail); a row the service refuses is reported and the others go on."""
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            done = 0
            for obj in queryset:
                try:
                    apply(obj, form.cleaned_data, request)
                    done += 1
                except (DomainError, InvalidOperation) as exc:
                    detail = getattr(exc, "detail", exc)
                    modeladmin.message_user(request, f"{label(obj)}: {detail}", messages.ERROR)
            modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS if done else messages.WARNING)
            return HttpResponseRedirect(request.get_full_path())
    else:
        form = form_class()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "items": [(obj.pk, label(obj)) for obj in queryset],
        "action": request.POST.get("action"),
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/audited_action_form.html", context)


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


class LabelledAdmin(admin.ModelAdmin):
    """A change page headed by ``object_label(obj)`` (names, not the ids a model's ``__str__`` shows)."""

    def object_label(self, obj: Model) -> str:
        return str(obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):  # noqa: ANN001, ANN201, PLR0917
        if obj is not None:
            context["subtitle"] = self.object_label(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)
