"""WebSocket routes (each consumer authenticates itself)."""

from __future__ import annotations

websocket_urlpatterns: list = []
