from __future__ import annotations

from chat import event_views, send_views, views
from core.routes import route

urlpatterns = [
    *route("api/chat/stream", send_views.ChatStreamView.as_view(), name="chat-stream"),
    *route("api/chat/async", send_views.ChatAsyncView.as_view(), name="chat-async"),
    *route(
        "api/chat/messages/<uuid:message_id>/events",
        event_views.MessageEventsView.as_view(),
        name="chat-message-events",
    ),
    *route("api/chat/upload", views.UploadView.as_view(), name="chat-upload"),
    *route("api/chat/sessions", views.SessionViewSet.as_view({"get": "list"}), name="chat-sessions"),
    *route(
        "api/chat/sessions/<uuid:pk>",
        views.SessionViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="chat-session-detail",
    ),
    *route(
        "workspaces/<uuid:pk>/threads", views.WorkspaceThreadsView.as_view({"get": "list"}), name="workspace-threads"
    ),
    *route(
        "workspaces/<uuid:pk>/artifacts",
        views.WorkspaceArtifactsView.as_view({"get": "list"}),
        name="workspace-artifacts",
    ),
    # the wizard drafts specialists with a model: a turn of the pipeline, so it is served here
    *route("specialists/wizard", views.SpecialistWizardView.as_view(), name="specialist-wizard"),
]
