"""Talking MCP to an org's server with the official SDK (streamable HTTP or SSE)."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx2
from django.conf import settings
from django.utils import timezone

from core.crypto import decrypt_json
from core.db import in_thread
from core.json_types import JSONObject
from core.url_guard import PinnedTransport, check_url
from mcps.models import AuthType, Connection, Tool, Transport
from mcps.transport import CappedTransport, ResponseCap

if TYPE_CHECKING:
    from mcp import ClientSession, types

MAX_PAGES = 100
# What one connection may store: a server listing more tools, or a tool with a longer name,
# description or input schema, fails the sync (502 ``mcp_unreachable``, the reason in ``lastError``)
# and the stored tools stay as they were.
MAX_TOOLS = 500
MAX_NAME_CHARS = Tool._meta.get_field("name").max_length or 200
MAX_DESCRIPTION_CHARS = 16 * 1024
MAX_SCHEMA_BYTES = 64 * 1024


class MCPError(Exception):
    """The server could not be reached or answered with an error."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    transport: str
    headers: dict[str, str]
    org_id: uuid.UUID | None = None  # whose share of the DNS lookup threads the connect uses


@dataclass(frozen=True, slots=True)
class RemoteTool:
    name: str
    description: str
    input_schema: JSONObject


def target_of(connection: Connection) -> Target:
    credentials = decrypt_json(connection.credentials_encrypted)
    headers: dict[str, str] = {}
    token = credentials.get("token", "")
    if connection.auth_type == AuthType.BEARER and token:
        headers["Authorization"] = f"Bearer {token}"
    elif connection.auth_type == AuthType.HEADER and token:
        headers[credentials.get("headerName") or "X-API-Key"] = token
    return Target(
        url=connection.url, transport=connection.transport, headers=headers, org_id=connection.organization_id
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError):
        return "The MCP server did not answer in time."
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"The MCP server answered HTTP {exc.response.status_code}."
    if isinstance(exc, httpx2.HTTPError):
        return f"Could not reach the MCP server: {exc.__class__.__name__}: {exc}".rstrip(": ")
    return f"{exc.__class__.__name__}: {exc}".rstrip(": ")


def import_sdk() -> None:
    """The MCP SDK imported now: a long-lived process does this before it freezes what it imported
    (``leancore.long_lived``), since it will use it."""
    import mcp.client.sse  # noqa: PLC0415
    import mcp.client.streamable_http  # noqa: F401, PLC0415


@asynccontextmanager
async def open_session(target: Target, *, time_limit: float, cap: ResponseCap) -> AsyncIterator[ClientSession]:
    """An initialized MCP session. The URL is checked (SSRF guard) again right before connecting;
    every response is held to ``cap``."""
    # The SDK when a server is first called (about 0.4 s of CPU to import, which a one-off process such
    # as migrate or check never pays); servers and workers import it at startup (``import_sdk``).
    from mcp import ClientSession  # noqa: PLC0415
    from mcp.client.sse import sse_client  # noqa: PLC0415
    from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415

    addresses = await anyio.to_thread.run_sync(  # bounded: see core.url_guard
        functools.partial(check_url, target.url, org_id=target.org_id)
    )

    def client(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        """The SDK's client, connecting only to the addresses just checked (no second DNS lookup), every
        response capped."""
        inner = (
            PinnedTransport(target.url, addresses)
            if addresses is not None
            else httpx2.AsyncHTTPTransport(trust_env=False)
        )
        transport = CappedTransport(inner, cap)
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, transport=transport)

    if target.transport == Transport.SSE:
        transport = sse_client(
            target.url,
            headers=target.headers,
            timeout=time_limit,
            sse_read_timeout=time_limit,
            httpx_client_factory=client,
        )
        async with (
            transport as (read, write),
            ClientSession(read, write, read_timeout_seconds=time_limit) as session,
        ):
            await session.initialize()
            yield session
        return
    http = client(headers=target.headers, timeout=httpx2.Timeout(time_limit))
    async with (
        http,
        streamable_http_client(target.url, http_client=http) as (read, write),
        ClientSession(read, write, read_timeout_seconds=time_limit) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def _bounded_call(time_limit: float) -> AsyncIterator[ResponseCap]:
    """The body runs within ``time_limit``, and a response over ``MCP_MAX_RESPONSE_BYTES`` ends it at
    once (the SDK would otherwise wait out the time limit for an answer the cut stream never brings).
    Every failure is an ``MCPError`` that says what happened."""
    cap = ResponseCap(settings.MCP_MAX_RESPONSE_BYTES)
    try:
        with anyio.fail_after(time_limit), anyio.CancelScope() as scope:
            cap.on_exceeded = scope.cancel
            yield cap
        if cap.exceeded is not None:
            raise cap.exceeded
    except Exception as exc:
        raise MCPError(str(cap.exceeded) if cap.exceeded else _describe(exc)) from exc


async def list_remote_tools(target: Target, *, time_limit: float) -> list[RemoteTool]:
    """initialize + tools/list, following every cursor page; bounded in time and size."""
    from mcp.types import PaginatedRequestParams  # noqa: PLC0415  # imported with the SDK, by open_session

    tools: list[RemoteTool] = []
    async with _bounded_call(time_limit) as cap, open_session(target, time_limit=time_limit, cap=cap) as session:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            result = await session.list_tools(params=params)
            tools += [_checked(t) for t in result.tools]
            if len(tools) > MAX_TOOLS:
                raise MCPError(f"The MCP server lists more than {MAX_TOOLS} tools.")
            cursor = result.next_cursor
            if not cursor:
                break
    return tools


def _checked(tool: types.Tool) -> RemoteTool:
    """The tool as stored, or ``MCPError`` saying which limit it passes (the database would refuse it,
    or one server would fill it): a name of 1 to MAX_NAME_CHARS characters, a description of at most
    MAX_DESCRIPTION_CHARS, an input schema of at most MAX_SCHEMA_BYTES of JSON; no NUL character."""
    name, description = tool.name, tool.description or ""
    schema = dict(tool.input_schema or {})
    encoded = json.dumps(schema)
    shown = name[:60]
    if not name or len(name) > MAX_NAME_CHARS:
        raise MCPError(f"The MCP server lists a tool whose name is empty or longer than {MAX_NAME_CHARS} characters.")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise MCPError(f"The tool {shown!r} has a description longer than {MAX_DESCRIPTION_CHARS} characters.")
    if len(encoded.encode()) > MAX_SCHEMA_BYTES:
        raise MCPError(f"The tool {shown!r} has an input schema larger than {MAX_SCHEMA_BYTES} bytes.")
    if "\x00" in name or "\x00" in description or "\\u0000" in encoded:
        raise MCPError(f"The tool {shown!r} has a NUL character in its name, description or input schema.")
    return RemoteTool(name, description, schema)


def _result_text(result: types.CallToolResult) -> str:
    structured = getattr(result, "structured_content", None)
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        text = getattr(block, "text", None)
        if text is not None:
            parts.append(text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", exclude_none=True)))
    if not parts and structured is not None:
        return json.dumps(structured)
    return "\n".join(parts)


async def call_remote_tool(target: Target, name: str, arguments: JSONObject, *, time_limit: float) -> tuple[str, bool]:
    """tools/call of one tool; bounded in time and size."""
    async with _bounded_call(time_limit) as cap, open_session(target, time_limit=time_limit, cap=cap) as session:
        result = await session.call_tool(name, arguments)
    return _result_text(result), bool(getattr(result, "is_error", False))


@dataclass(frozen=True, slots=True)
class LoadedTool:
    target: Target
    name: str
    connection_id: uuid.UUID
    connection_failing: bool


def _load_tool(org_id: uuid.UUID, tool_id: uuid.UUID) -> LoadedTool | str:
    tool = (  # a tool of another org is no tool at all: its server and credentials are not this org's
        Tool.objects.for_org(org_id)
        .select_related("connection")
        .filter(pk=tool_id, connection__organization_id=org_id)
        .first()
    )
    if tool is None:
        return "This tool no longer exists."
    if not tool.enabled or not tool.connection.enabled:
        return "This tool is disabled."
    connection = tool.connection
    failing = connection.status == Connection.Status.ERROR
    return LoadedTool(target_of(connection), tool.name, connection.pk, failing)


def _record_contact(org_id: uuid.UUID, connection_id: uuid.UUID, error: str | None) -> None:
    """A tool call that could not reach the server (gone, refused, too slow) marks its connection
    ``error`` with the reason; the next call that gets through marks it ``connected`` again."""
    now = timezone.now()
    if error is not None:
        Connection.objects.for_org(org_id).filter(pk=connection_id).update(
            status=Connection.Status.ERROR, last_error=error[:2000], updated_at=now
        )
    else:
        Connection.objects.for_org(org_id).filter(pk=connection_id, status=Connection.Status.ERROR).update(
            status=Connection.Status.CONNECTED, last_error="", updated_at=now
        )


async def call_tool_by_id(*, org_id: uuid.UUID | None, tool_id: uuid.UUID, arguments: JSONObject) -> tuple[str, bool]:
    """For the turn pipeline: a tool of ``org_id``. Returns (result text, is_error); a failure becomes
    an error result the model sees, and the connection's status records it."""
    if org_id is None:
        return "This tool no longer exists.", True
    loaded = await in_thread(_load_tool)(org_id, tool_id)  # the connection given back before the call
    if isinstance(loaded, str):
        return loaded, True
    try:
        outcome = await call_remote_tool(
            loaded.target, loaded.name, arguments, time_limit=settings.MCP_TOOL_TIMEOUT_SECONDS
        )
    except MCPError as exc:
        await in_thread(_record_contact)(org_id, loaded.connection_id, str(exc))
        return f"The tool failed: {exc}", True
    if loaded.connection_failing:
        await in_thread(_record_contact)(org_id, loaded.connection_id, None)
    return outcome
