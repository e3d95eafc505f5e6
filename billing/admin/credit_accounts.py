"""The credit accounts' page: balances read-only, moved only by granting or adjusting credits."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from billing.admin.actions import AdjustForm, GrantForm, adjust_and_record, grant_and_record
from billing.admin.permissions import MONEY, MoneyPermission
from billing.models import CreditAccount
from orgs.admin_base.actions import form_action
from orgs.admin_base.display import LabelledAdmin, credits_text


@admin.register(CreditAccount)
class CreditAccountAdmin(MoneyPermission, LabelledAdmin[CreditAccount]):
    list_display = ["account", "organization", "balance_display", "reserved_display", "spent_display", "period_start"]
    search_fields = ["organization__name", "organization__slug"]
    fields = readonly_fields = (
        "organization",
        "balance_display",
        "reserved_display",
        "spent_display",
        "period_start",
        "updated_at",
    )
    list_select_related = ["organization"]
    actions = ["grant_credits", "adjust_credits"]

    def object_label(self, obj: CreditAccount) -> str:
        return f"Account of {obj.organization.name}"

    @admin.display(description="Account", ordering="organization__name")
    def account(self, obj: CreditAccount) -> str:
        return self.object_label(obj)

    @admin.display(description="Balance", ordering="balance")
    def balance_display(self, obj: CreditAccount) -> str:
        return credits_text(obj.balance)

    @admin.display(description="Reserved", ordering="reserved")
    def reserved_display(self, obj: CreditAccount) -> str:
        return credits_text(obj.reserved)

    @admin.display(description="Spent this period", ordering="period_spent")
    def spent_display(self, obj: CreditAccount) -> str:
        return credits_text(obj.period_spent)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CreditAccount | None = None) -> bool:
        return False  # balances move only through the ledger (the actions)

    def has_delete_permission(self, request: HttpRequest, obj: CreditAccount | None = None) -> bool:
        return False

    @admin.action(description="Grant credits…", permissions=[MONEY])
    def grant_credits(self, request: HttpRequest, queryset: QuerySet[CreditAccount]) -> HttpResponse | None:
        return form_action(
            self,
            request,
            queryset.select_related("organization"),
            form_class=GrantForm,
            title="Grant credits",
            apply=lambda account, data, req: grant_and_record(account.organization, data, req),
            label=lambda account: account.organization.name,
        )

    @admin.action(description="Adjust or refund credits…", permissions=[MONEY])
    def adjust_credits(self, request: HttpRequest, queryset: QuerySet[CreditAccount]) -> HttpResponse | None:
        return form_action(
            self,
            request,
            queryset.select_related("organization"),
            form_class=AdjustForm,
            title="Adjust or refund credits",
            apply=lambda account, data, req: adjust_and_record(account.organization, data, req),
            label=lambda account: account.organization.name,
        )
