from __future__ import annotations

from core.routes import route
from tasks.views import ProjectViewSet, TaskViewSet

urlpatterns = [
    *route("projects", ProjectViewSet.as_view({"get": "list", "post": "create"}), name="projects"),
    *route(
        "projects/<uuid:pk>",
        ProjectViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="project-detail",
    ),
    *route("tasks", TaskViewSet.as_view({"get": "list", "post": "create"}), name="tasks"),
    *route(
        "tasks/<uuid:pk>",
        TaskViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="task-detail",
    ),
    *route("tasks/<uuid:pk>/run", TaskViewSet.as_view({"post": "run"}), name="task-run"),
]
