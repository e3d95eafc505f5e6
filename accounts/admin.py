from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User

# simplejwt's own admin shows every refresh token in full: anyone with admin access could sign in as
# any user with it. Operators see which sessions exist; the tokens never show. Revoking one is an
# audited action with a reason: the back office's audit trail adds it (orgs.admin), above this floor.
for _model in (OutstandingToken, BlacklistedToken):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


_TOKEN_COLUMNS = ("jti", "user", "created_at", "expires_at", "revoked")


@admin.register(OutstandingToken)
class RefreshTokenAdmin(admin.ModelAdmin[OutstandingToken]):
    list_display = ["jti", "user", "created_at", "expires_at", "revoked"]
    search_fields = ["user__email", "jti"]
    list_select_related = ["user", "blacklistedtoken"]
    fields = _TOKEN_COLUMNS
    readonly_fields = _TOKEN_COLUMNS

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutstandingToken]:
        return super().get_queryset(request).defer("token")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # ?token__startswith=… would answer whether a guess is right: no lookups on the token
        return lookup.split("__", 1)[0] != "token" and super().lookup_allowed(lookup, value, request)

    @admin.display(boolean=True)
    def revoked(self, obj: OutstandingToken) -> bool:
        return hasattr(obj, "blacklistedtoken")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutstandingToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OutstandingToken | None = None) -> bool:
        return False  # a deleted token leaves the blacklist with it: it would work again


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    ordering = ["-date_joined"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_active", "is_superuser"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "name", "password1", "password2"]})]
