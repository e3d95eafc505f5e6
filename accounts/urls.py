from __future__ import annotations

from accounts import views
from core.routes import route

urlpatterns = [
    *route("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    *route("auth/verify", views.VerifyView.as_view(), name="auth-verify"),
    *route("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    *route("auth/password-reset", views.PasswordResetView.as_view(), name="auth-password-reset"),
    *route("auth/password-reset/confirm", views.PasswordResetConfirmView.as_view(), name="auth-password-reset-confirm"),
    *route("users/me/password", views.ChangePasswordView.as_view(), name="users-me-password"),
]
