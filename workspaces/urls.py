from __future__ import annotations

from core.routes import route
from workspaces.views import WorkspaceViewSet as V

urlpatterns = [
    *route("workspaces", V.as_view({"get": "list", "post": "create"}), name="workspaces"),
    *route(
        "workspaces/<uuid:pk>",
        V.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="workspace-detail",
    ),
    *route("workspaces/<uuid:pk>/files", V.as_view({"get": "files", "post": "upload"}), name="workspace-files"),
    *route("workspaces/<uuid:pk>/files/<uuid:file_id>", V.as_view({"delete": "delete_file"}), name="workspace-file"),
]
