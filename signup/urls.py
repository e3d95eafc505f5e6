from __future__ import annotations

from core.routes import route
from signup import views

urlpatterns = [
    *route("register", views.RegisterView.as_view(), name="register"),
]
