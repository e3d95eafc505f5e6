"""WebSocket routes (each consumer authenticates itself)."""

from __future__ import annotations

from django.urls import re_path

from chat.consumers import ChatSessionConsumer

websocket_urlpatterns = [
    re_path(r"^ws/chat/sessions/(?P<session_id>[0-9a-fA-F-]{36})/?$", ChatSessionConsumer.as_asgi()),
]
