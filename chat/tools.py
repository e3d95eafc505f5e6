"""The tools a specialist's model is offered, and running the model's calls."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async

from chat.artifacts import save_artifact
from chat.context import ToolBinding
from chat.providers.base import ToolSpec
from core import metrics, tracing
from core.json_types import JSONObject
from mcps.client import call_tool_by_id
from specialists.models import Specialist

NAME_PATTERN = re.compile(r"[^a-zA-Z0-9_-]")
MAX_RESULT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    result: str
    is_error: bool
    duration_ms: int


def _clean(name: str) -> str:
    return NAME_PATTERN.sub("_", name)[:64] or "tool"


SAVE_ARTIFACT = ToolSpec(
    name="save_artifact",
    description="Save a finished piece of work (a document, a plan, code, a table) in the workspace.",
    input_schema={
        "type": "object",
        "properties": {
            "title": {"type": "string", "description": "A short title."},
            "content": {"type": "string", "description": "The full content."},
            "kind": {"type": "string", "description": "document, code, table, plan…", "default": "document"},
        },
        "required": ["title", "content"],
    },
)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where a call happens, for built-ins."""

    org_id: uuid.UUID
    workspace_id: uuid.UUID | None
    session_id: uuid.UUID | None
    specialist_id: uuid.UUID | None


def tool_plan(specialist: Specialist, *, in_workspace: bool = False) -> tuple[list[ToolSpec], dict[str, ToolBinding]]:
    """The specialist's allowed tools (enabled, on enabled connections) with names unique for the model:
    a name two connections share is prefixed with its connection's name. A workspace session also
    gets the built-in ``save_artifact``."""
    org_id = specialist.organization_id
    # inside the specialist's org, whatever wrote the rows (the API checks, the admin too); not asked
    # at all when the specialist's query already said it has none
    tools = (
        list(
            specialist.tools.filter(
                organization_id=org_id, connection__organization_id=org_id, enabled=True, connection__enabled=True
            )
            .select_related("connection")
            .order_by("connection__created_at", "name")
        )
        if getattr(specialist, "has_tools", True)
        else []
    )
    counts: dict[str, int] = {}
    for tool in tools:
        counts[_clean(tool.name)] = counts.get(_clean(tool.name), 0) + 1
    specs: list[ToolSpec] = []
    bindings: dict[str, ToolBinding] = {}
    for tool in tools:
        base = _clean(tool.name)
        name = base if counts[base] == 1 else _clean(f"{tool.connection.name}__{tool.name}")[:64]
        suffix = 2
        while name in bindings:
            name = f"{name[:60]}_{suffix}"
            suffix += 1
        schema = tool.input_schema or {"type": "object", "properties": {}}
        specs.append(ToolSpec(name=name, description=tool.description, input_schema=schema))
        bindings[name] = ToolBinding(
            model_name=name,
            tool_id=tool.pk,
            connection_id=tool.connection_id,
            remote_name=tool.name,
            org_id=org_id,
        )
    if in_workspace and SAVE_ARTIFACT.name not in bindings:
        specs.append(SAVE_ARTIFACT)
        bindings[SAVE_ARTIFACT.name] = ToolBinding(
            model_name=SAVE_ARTIFACT.name,
            tool_id=None,
            connection_id=None,
            remote_name=SAVE_ARTIFACT.name,
            builtin=SAVE_ARTIFACT.name,
        )
    return specs, bindings


async def _save_artifact(arguments: JSONObject, context: ToolContext) -> tuple[str, bool]:
    content = arguments.get("content")
    if not isinstance(content, str) or not content:
        return "save_artifact needs a non-empty 'content'.", True
    artifact = await database_sync_to_async(save_artifact)(
        org_id=context.org_id,
        workspace_id=context.workspace_id,
        session_id=context.session_id,
        specialist_id=context.specialist_id,
        title=str(arguments.get("title") or "Untitled"),
        content=content,
        kind=str(arguments.get("kind") or "document"),
    )
    if artifact is None:
        return "This workspace no longer exists.", True
    return json.dumps({"artifactId": str(artifact.pk), "title": artifact.title}), False


def _as_text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_RESULT_CHARS]


async def execute_tool(
    *, binding: ToolBinding | None, arguments: JSONObject, context: ToolContext | None = None
) -> ToolOutcome:
    """Runs one call. Never raises: a failing, disabled or deleted tool is reported to the model.
    While tracing is on, in a tool call's span (``core.tracing``: no argument or result on it)."""
    if binding is None:
        return ToolOutcome("This tool is not available to this specialist.", True, 0)
    if not tracing.ENABLED:
        return await _execute(binding, arguments, context)
    with tracing.tool_call(name=binding.remote_name, mcp=binding.tool_id is not None) as span:
        outcome = await _execute(binding, arguments, context)
        if outcome.is_error:
            tracing.tool_failed(span)
    return outcome


async def _execute(binding: ToolBinding, arguments: JSONObject, context: ToolContext | None) -> ToolOutcome:
    started = time.monotonic()
    try:
        if binding.builtin == SAVE_ARTIFACT.name and context is not None and context.workspace_id:
            result, is_error = await _save_artifact(arguments, context)
        elif binding.tool_id is None:
            result, is_error = "This tool no longer exists.", True
        else:
            result, is_error = await call_tool_by_id(
                org_id=binding.org_id, tool_id=binding.tool_id, arguments=arguments
            )
    except Exception as exc:
        result, is_error = f"The tool failed: {exc}", True
    if binding.tool_id is not None:  # an MCP server's tool (not a built-in)
        metrics.record_mcp_tool_call(ok=not is_error)
    return ToolOutcome(_as_text(result), is_error, int((time.monotonic() - started) * 1000))
