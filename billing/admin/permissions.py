"""Who may use the billing pages' money and alert actions: the operators' permissions."""

from __future__ import annotations

from django.db.models import Model
from django.http import HttpRequest

MONEY = "manage_credits"  # billing.manage_credits: grant, adjust, refund, open and close the circuit


class MoneyPermission:
    """``@admin.action(permissions=["manage_credits"])``: only operators with billing.manage_credits."""

    def has_manage_credits_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm(f"billing.{MONEY}")


class AcknowledgePermission:
    """``@admin.action(permissions=["acknowledge"])``: operators who may change alerts (the alerts'
    own page stays read-only)."""

    def has_acknowledge_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm("billing.change_budgetalert")
