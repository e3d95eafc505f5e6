from __future__ import annotations

from core.routes import route
from orgs import api_key_views, auth_views, views

urlpatterns = [
    *route("auth/login", auth_views.LoginView.as_view(), name="auth-login"),
    *route("auth/accept-invite", auth_views.AcceptInviteView.as_view(), name="auth-accept-invite"),
    *route("users/me", auth_views.MeView.as_view(), name="users-me"),
    *route("orgs", views.OrganizationListView.as_view({"get": "list"}), name="orgs"),
    *route("orgs/<uuid:pk>", views.OrganizationDetailView.as_view(), name="org-detail"),
    *route("orgs/<uuid:pk>/billing-email", views.BillingEmailView.as_view(), name="org-billing-email"),
    *route(
        "orgs/<uuid:org_id>/api-keys",
        api_key_views.ApiKeyViewSet.as_view({"get": "list", "post": "create"}),
        name="org-api-keys",
    ),
    *route(
        "orgs/<uuid:org_id>/api-keys/<uuid:pk>",
        api_key_views.ApiKeyViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="org-api-key-detail",
    ),
    *route("users", views.MemberListView.as_view({"get": "list"}), name="users"),
    *route("users/invite", views.InviteView.as_view(), name="users-invite"),
    *route("users/<uuid:pk>", views.MemberDetailView.as_view(), name="user-detail"),
    *route("users/<uuid:pk>/role", views.MemberRoleView.as_view(), name="user-role"),
    *route("users/<uuid:pk>/quota", views.MemberQuotaView.as_view(), name="user-quota"),
]
