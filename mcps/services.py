"""MCP writes: connections, sync, and which tools a specialist may use."""

from __future__ import annotations

from typing import Any

from leancore.api.errors import ValidationFailed
from mcps.models import Tool


def set_specialist_tools(*, specialist: Any, tools: list[Tool]) -> None:
    """Tools must be the org's own and enabled (the org's allow-list)."""
    for tool in tools:
        if tool.organization_id != specialist.organization_id or not tool.enabled:
            raise ValidationFailed("toolIds", f"Tool {tool.pk} is not an enabled tool of this organization.")
    specialist.tools.set(tools)
