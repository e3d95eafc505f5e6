"""``form_action``: an admin action that asks for a form first (a reason, an amount…) on a page of its
own, then applies it to each selected row."""

from __future__ import annotations

from collections.abc import Callable
from decimal import InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from core.errors import DomainError
from orgs.admin_base.service_saves import CleanedData


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Goes into the audit trail with who did what and when.")


def form_action[M: Model](
    modeladmin: admin.ModelAdmin[M],
    request: HttpRequest,
    queryset: QuerySet[M],
    *,
    title: str,
    apply: Callable[[M, CleanedData, HttpRequest], object],
    form_class: type[forms.Form] = ReasonForm,
    label: Callable[[M], str] = str,
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
