"""``AuditedAdmin``: the page every audited record has. Every add, change and delete asks a reason, saves
through the app's service where one exists (its rules hold, its errors show on the form), and writes
the audit trail and the admin's history."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.options import Action, ActionLocation
from django.contrib.admin.utils import flatten_fieldsets
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseModelFormSet
from django.http import HttpRequest, HttpResponse, QueryDict

from core.errors import DomainError
from orgs.admin_base.audit_trail import REASON, form_changes, reason_field, record
from orgs.models import Organization

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldOpts, _FieldsetSpec  # the stubs' names for fieldsets
    from django_stubs_ext import StrOrPromise

# A page's inline formset (of another model than the page's).
type _Formset = BaseModelFormSet[Model, forms.ModelForm[Model]]

UNCHANGED = "No fields changed."  # Django's words for a save that changes nothing


class _DryRun(Exception):
    """Rolls back a service's write that only checked the form."""


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", key).lower()


class AuditedAdmin[M: Model](admin.ModelAdmin[M]):
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

    def service_save(self, request: HttpRequest, form: forms.ModelForm[M], change: bool) -> M | None:
        """Writes the form's record through the app's service and returns it; None: no service
        writes this record, the ORM does."""
        return None

    def service_delete(self, request: HttpRequest, obj: M) -> None:
        obj.delete()

    def audit_org(self, obj: Model) -> Organization | None:
        if isinstance(obj, Organization):
            return obj
        org = getattr(obj, "organization", None)
        return org if isinstance(org, Organization) else None

    def audit_name(self, obj: Model) -> str:
        return obj._meta.model_name or type(obj).__name__.lower()

    # --- the form: a reason, and the service's rules as form errors ---

    def _editable(self, request: HttpRequest, obj: M | None) -> bool:
        return self.has_add_permission(request) if obj is None else self.has_change_permission(request, obj)

    def get_fieldsets(self, request: HttpRequest, obj: M | None = None) -> _FieldsetSpec:
        return self.with_reason(request, obj, super().get_fieldsets(request, obj))

    def with_reason(self, request: HttpRequest, obj: M | None, fieldsets: _FieldsetSpec) -> _FieldsetSpec:
        """The page's fieldsets, then the reason (when the page may save)."""
        kept = [(name, _without_reason(opts)) for name, opts in fieldsets]
        if not self._editable(request, obj):
            return kept
        reason: _FieldOpts = {"fields": [REASON]}
        return [*kept, ("Audit trail", reason)]

    def get_form(
        self, request: HttpRequest, obj: M | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[M]]:  # ``kwargs``: ModelAdmin's, handed on
        fields = kwargs["fields"] if "fields" in kwargs else flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = None if fields is None else [f for f in fields if f != REASON]
        form = super().get_form(request, obj, change=change, **kwargs)
        modeladmin = self

        class AuditedForm(form):  # type: ignore[misc, valid-type]  # a class made at run time
            audit_reason = reason_field()

            def _post_clean(self) -> None:
                super()._post_clean()
                if not self._errors:
                    modeladmin._check_with_service(request, self)

        return AuditedForm

    def _check_with_service(self, request: HttpRequest, form: forms.ModelForm[M]) -> None:
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

    def save_model(self, request: HttpRequest, obj: M, form: forms.ModelForm[M], change: bool) -> None:
        saved = self.service_save(request, form, change)
        if saved is None:
            super().save_model(request, obj, form, change)
            return
        form._saved_by_service = True  # type: ignore[attr-defined]  # its many-to-many fields too
        obj.pk = saved.pk
        obj.refresh_from_db()  # what the service stored (e.g. a status it reset)
        obj._state.adding = False

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm[M], formsets: Sequence[_Formset], change: bool
    ) -> None:
        if getattr(form, "_saved_by_service", False):
            for formset in formsets:
                self.save_formset(request, form, formset, change=change)
        else:
            super().save_related(request, form, formsets, change)
        obj = form.instance
        reason = form.cleaned_data.get(REASON, "")
        details = form_changes(form, add=not change, secret=self.audit_secret_fields)
        if change and not details and not _formsets_changed(formsets):
            request._audit_unchanged = True  # type: ignore[attr-defined]  # nothing to record, nor a history row
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

    def _audit_inline(self, request: HttpRequest, formset: _Formset, reason: str, *, org: Organization | None) -> None:
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

    def log_change(self, request: HttpRequest, obj: M, message: object) -> LogEntry | None:  # type: ignore[override]  # none for no change
        if getattr(request, "_audit_unchanged", False):
            return None
        return super().log_change(request, obj, message)

    def message_user(
        self,
        request: HttpRequest,
        message: StrOrPromise,
        level: int | str = messages.INFO,
        extra_tags: str = "",
        fail_silently: bool = False,
    ) -> None:
        """A save that changed nothing says so (and is neither in the trail nor in the history)."""
        if getattr(request, "_audit_unchanged", False) and level == messages.SUCCESS:
            message, level = f"{UNCHANGED} Nothing was recorded.", messages.INFO
        super().message_user(request, message, level, extra_tags, fail_silently)

    def construct_change_message(  # type: ignore[override]  # with a reason: the history's text
        self, request: HttpRequest, form: forms.Form, formsets: Iterable[_Formset], add: bool = False
    ) -> list[dict[str, dict[str, list[str]]]] | str:
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
            request._audit_reason = reason  # type: ignore[attr-defined]  # read by the deletion's record
            return reason
        return None

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, object] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and self._reason_to_delete(request) is None:
            request.POST = QueryDict(mutable=True)  # type: ignore[assignment]  # the confirmation page again
        return super().delete_view(request, object_id, extra_context)

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST
    ) -> dict[str, Action | None]:
        actions = super().get_actions(request, action_location=action_location)
        found = actions.get("delete_selected")
        if found is not None:
            actions["delete_selected"] = dataclasses.replace(found, func=_audited_delete_selected)  # type: ignore[arg-type]  # ours
        return actions

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[M]) -> list[LogEntry]:
        """Written per object with its deletion (``_delete_audited``): a deletion a service refuses is
        not in the history."""
        return []

    def delete_model(self, request: HttpRequest, obj: M) -> None:
        self._delete_audited(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[M]) -> None:
        for obj in queryset:
            self._delete_audited(request, obj)

    def _delete_audited(self, request: HttpRequest, obj: M) -> bool:
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


def _without_reason(opts: _FieldOpts) -> _FieldOpts:
    return {**opts, "fields": [field for field in opts["fields"] if field != REASON]}


def _formsets_changed(formsets: Iterable[_Formset]) -> bool:
    return any(
        getattr(formset, name, None)
        for formset in formsets
        for name in ("new_objects", "changed_objects", "deleted_objects")
    )


def _audited_delete_selected[M: Model](
    modeladmin: AuditedAdmin[M], request: HttpRequest, queryset: QuerySet[M]
) -> HttpResponse | None:
    """Django's bulk delete, once the confirmation page gave a reason."""
    if request.POST.get("post") and modeladmin._reason_to_delete(request) is None:
        request.POST = request.POST.copy()  # type: ignore[assignment]  # a mutable copy, without "post"
        request.POST.pop("post")  # type: ignore[misc]  # the copy is mutable
    return delete_selected(modeladmin, request, queryset)
