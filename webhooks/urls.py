from __future__ import annotations

from core.routes import route
from webhooks import views

urlpatterns = [
    *route(
        "orgs/<uuid:org_id>/webhooks",
        views.WebhookViewSet.as_view({"get": "list", "post": "create"}),
        name="org-webhooks",
    ),
    *route(
        "orgs/<uuid:org_id>/webhooks/<uuid:pk>",
        views.WebhookViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="org-webhook-detail",
    ),
    *route(
        "orgs/<uuid:org_id>/webhooks/<uuid:pk>/deliveries",
        views.WebhookViewSet.as_view({"get": "deliveries"}),
        name="org-webhook-deliveries",
    ),
    *route(
        "orgs/<uuid:org_id>/webhooks/<uuid:pk>/test",
        views.WebhookViewSet.as_view({"post": "ping"}),
        name="org-webhook-test",
    ),
]
