"""The ledger's page: every entry read-only, with who, which specialist and session; usage refunds."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from accounts.models import User
from billing.admin.actions import RefundForm, adjust_and_record
from billing.admin.permissions import MONEY, MoneyPermission
from billing.models import LedgerEntry
from orgs.admin_base.actions import form_action
from orgs.admin_base.display import credits_text
from orgs.admin_base.read_only import ReadOnlyAdmin


def admin_link(viewname: str, pk: uuid.UUID | None, text: str) -> str:
    if pk is None:
        return "-"
    try:
        url = reverse(viewname, args=[pk])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}">{}</a>', url, text)


def user_emails(ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    return dict(User.objects.filter(pk__in={pk for pk in ids if pk}).values_list("pk", "email"))


@admin.register(LedgerEntry)
class LedgerEntryAdmin(MoneyPermission, ReadOnlyAdmin[LedgerEntry]):
    list_display = [
        "created_at",
        "organization",
        "kind",
        "amount_display",
        "balance_after_display",
        "model",
        "user_link",
        "specialist_link",
        "session_link",
        "description",
    ]
    list_filter = ["kind", ("organization", admin.RelatedOnlyFieldListFilter), "model", "created_at"]
    search_fields = ["organization__name", "organization__slug", "description", "model", "specialist_name"]
    list_select_related = ["organization", "package"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "created_at",
        "organization",
        "kind",
        "amount_display",
        "balance_after_display",
        "model",
        "input_tokens",
        "output_tokens",
        "user_link",
        "api_key_id",
        "specialist_link",
        "session_link",
        "message_id",
        "package",
        "description",
    )
    actions = ["refund"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        email = User.objects.filter(pk=OuterRef("user_id")).values("email")[:1]
        entries: QuerySet[LedgerEntry] = super().get_queryset(request).annotate(user_email=Subquery(email))
        return entries

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: LedgerEntry) -> str:
        return credits_text(obj.amount)

    @admin.display(description="Balance after", ordering="balance_after")
    def balance_after_display(self, obj: LedgerEntry) -> str:
        return credits_text(obj.balance_after)

    @admin.display(description="User", ordering="user_email")
    def user_link(self, obj: LedgerEntry) -> str:
        if obj.user_id is None:
            return "-"
        email = getattr(obj, "user_email", None)  # annotated by get_queryset
        return admin_link("admin:accounts_user_change", obj.user_id, email or str(obj.user_id))

    @admin.display(description="Specialist", ordering="specialist_name")
    def specialist_link(self, obj: LedgerEntry) -> str:
        text = obj.specialist_name or str(obj.specialist_id)
        return admin_link("admin:specialists_specialist_change", obj.specialist_id, text)

    @admin.display(description="Session")
    def session_link(self, obj: LedgerEntry) -> str:
        return admin_link("admin:chat_chatsession_change", obj.session_id, "session")

    @admin.action(description="Refund the selected usage…", permissions=[MONEY])
    def refund(self, request: HttpRequest, queryset: QuerySet[LedgerEntry]) -> HttpResponse | None:
        usage = queryset.filter(kind=LedgerEntry.Kind.USAGE, amount__lt=0).select_related("organization")
        if not usage.exists():
            self.message_user(request, "Only usage entries can be refunded.", messages.WARNING)
            return None

        def apply(entry: LedgerEntry, data: Mapping[str, object], req: HttpRequest) -> LedgerEntry:
            amount = data["amount"] or -entry.amount
            return adjust_and_record(
                entry.organization, {**data, "kind": "refund", "amount": amount}, req, refund_of=entry
            )

        return form_action(
            self,
            request,
            usage,
            form_class=RefundForm,
            title="Refund usage",
            apply=apply,
            label=lambda entry: (
                f"{entry.organization.name}: {credits_text(-entry.amount)} on {entry.created_at:%Y-%m-%d}"
            ),
        )
