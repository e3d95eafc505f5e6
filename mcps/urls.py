from __future__ import annotations

from core.routes import route
from mcps import views

urlpatterns = [
    *route("mcp/catalog", views.CatalogViewSet.as_view({"get": "list"}), name="mcp-catalog"),
    *route("orgs/<uuid:org_id>/mcps", views.ConnectionViewSet.as_view({"get": "list", "post": "create"}), name="mcps"),
    *route(
        "orgs/<uuid:org_id>/mcps/<uuid:pk>",
        views.ConnectionViewSet.as_view({"put": "update", "delete": "destroy"}),
        name="mcp-detail",
    ),
    *route(
        "orgs/<uuid:org_id>/mcps/<uuid:pk>/sync", views.ConnectionViewSet.as_view({"post": "sync"}), name="mcp-sync"
    ),
    *route(
        "orgs/<uuid:org_id>/mcps/<uuid:pk>/tools", views.ConnectionViewSet.as_view({"get": "tools"}), name="mcp-tools"
    ),
    *route(
        "orgs/<uuid:org_id>/mcps/<uuid:pk>/tools/<uuid:tool_id>",
        views.ConnectionViewSet.as_view({"patch": "tool_update"}),
        name="mcp-tool-detail",
    ),
]
