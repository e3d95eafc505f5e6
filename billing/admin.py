from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from billing import services
from billing.models import (
    BudgetAlert,
    Circuit,
    CircuitEvent,
    CreditAccount,
    CreditPackage,
    LedgerEntry,
    ModelRate,
    Reservation,
)
from core.credits import credit_str
from core.errors import DomainError


class GrantForm(forms.Form):
    amount = forms.DecimalField(max_digits=20, decimal_places=6, min_value=Decimal("0.000001"))
    reason = forms.CharField(max_length=500)


class AdjustForm(forms.Form):
    kind = forms.ChoiceField(choices=[("adjustment", "Adjustment (signed)"), ("refund", "Refund (positive)")])
    amount = forms.DecimalField(max_digits=20, decimal_places=6)
    reason = forms.CharField(max_length=500)


def _credit_form_action(modeladmin, request, queryset, *, form_class, title, apply):
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            done = 0
            for account in queryset.select_related("organization"):
                try:
                    apply(account, form.cleaned_data, request.user)
                    done += 1
                except (DomainError, InvalidOperation) as exc:
                    modeladmin.message_user(request, f"{account.organization}: {exc}", messages.ERROR)
            modeladmin.message_user(request, f"{title}: {done} account(s) done.", messages.SUCCESS)
            return HttpResponseRedirect(request.get_full_path())
    else:
        form = form_class()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "queryset": queryset,
        "action": request.POST.get("action"),
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/billing/credit_action.html", context)


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ["organization", "balance_display", "reserved_display", "spent_display", "period_start"]
    search_fields = ["organization__name", "organization__slug"]
    readonly_fields = ["organization", "balance", "reserved", "period_start", "period_spent", "updated_at"]
    list_select_related = ["organization"]
    actions = ["grant_credits", "adjust_credits"]

    @admin.display(description="Balance")
    def balance_display(self, obj):
        return credit_str(obj.balance)

    @admin.display(description="Reserved")
    def reserved_display(self, obj):
        return credit_str(obj.reserved)

    @admin.display(description="Spent this period")
    def spent_display(self, obj):
        return credit_str(obj.period_spent)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Grant credits…")
    def grant_credits(self, request, queryset):
        return _credit_form_action(
            self,
            request,
            queryset,
            form_class=GrantForm,
            title="Grant credits",
            apply=lambda account, data, user: services.grant_credits(
                org=account.organization, amount=data["amount"], reason=data["reason"], actor=user
            ),
        )

    @admin.action(description="Adjust or refund credits…")
    def adjust_credits(self, request, queryset):
        return _credit_form_action(
            self,
            request,
            queryset,
            form_class=AdjustForm,
            title="Adjust or refund credits",
            apply=lambda account, data, user: services.adjust_credits(
                org=account.organization, amount=data["amount"], kind=data["kind"], reason=data["reason"], actor=user
            ),
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "kind", "amount", "balance_after", "model", "description"]
    list_filter = ["kind", "model", "created_at"]
    search_fields = ["organization__name", "organization__slug", "description", "model"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "model", "amount", "status", "charged"]
    list_filter = ["status", "model"]
    search_fields = ["organization__name"]
    list_select_related = ["organization"]


@admin.register(ModelRate)
class ModelRateAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "provider",
        "display_name",
        "input_credits_per_million",
        "output_credits_per_million",
        "context_window",
        "max_output_tokens",
        "active",
    ]
    list_filter = ["provider", "active"]
    search_fields = ["model", "display_name"]
    list_editable = ["active"]


@admin.register(CreditPackage)
class CreditPackageAdmin(admin.ModelAdmin):
    list_display = ["name", "credits", "price_cents", "currency", "active"]
    list_filter = ["active", "currency"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "organization", "kind", "threshold", "message", "acknowledged_at"]
    list_filter = ["kind", "acknowledged_at"]
    search_fields = ["organization__name", "message"]
    readonly_fields = ["organization", "kind", "threshold", "period_start", "message", "created_at"]
    list_select_related = ["organization"]


class CircuitEventInline(admin.TabularInline):
    model = CircuitEvent
    fk_name = "organization"
    extra = 0
    readonly_fields = ["state", "reason", "actor", "created_at"]
    can_delete = False


@admin.register(Circuit)
class CircuitAdmin(admin.ModelAdmin):
    list_display = ["organization", "state", "reason", "opened_at", "opened_by"]
    list_filter = ["state"]
    search_fields = ["organization__name"]
    readonly_fields = ["organization", "state", "reason", "opened_at", "opened_by", "updated_at"]
    actions = ["open_circuit", "close_circuit"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Open the circuit (stop spending)")
    def open_circuit(self, request, queryset):
        for circuit in queryset.select_related("organization"):
            services.set_circuit(org=circuit.organization, actor=request.user, state="open", reason="Opened in admin")
        self.message_user(request, "Circuit opened.", messages.SUCCESS)

    @admin.action(description="Close the circuit (allow spending)")
    def close_circuit(self, request, queryset):
        for circuit in queryset.select_related("organization"):
            services.set_circuit(org=circuit.organization, actor=request.user, state="closed", reason="Closed in admin")
        self.message_user(request, "Circuit closed.", messages.SUCCESS)
