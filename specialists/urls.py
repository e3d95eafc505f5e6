from __future__ import annotations

from core.routes import route
from specialists import views

urlpatterns = [
    *route("specialists", views.SpecialistViewSet.as_view({"get": "list", "post": "create"}), name="specialists"),
    *route(
        "specialists/<uuid:pk>",
        views.SpecialistViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="specialist-detail",
    ),
]
