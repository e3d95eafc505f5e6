"""MCP writes: connections, sync, the org's tool allow-list, and which tools a specialist may use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.crypto import decrypt_json, encrypt_json
from core.db import release_connections
from core.errors import DomainError, ValidationFailed
from core.url_guard import check_url, origin_of
from mcps.client import MCPError, RemoteTool, list_remote_tools, target_of
from mcps.masking import masked_url
from mcps.models import AuthType, CatalogEntry, Connection, Tool
from orgs.models import Organization


class MCPUnreachableError(DomainError):
    status = 502
    code = "mcp_unreachable"
    default_detail = "The MCP server could not be reached."


@dataclass(frozen=True)
class SyncResult:
    added: int
    updated: int
    removed: int
    tools: list[Tool]


def _credentials(auth_type: str, token: str | None, header_name: str | None, current: dict[str, str]) -> dict[str, str]:
    if auth_type == AuthType.NONE:
        return {}
    merged = dict(current)
    if token is not None:
        merged["token"] = token
    if header_name is not None:
        merged["headerName"] = header_name
    if not merged.get("token"):
        raise ValidationFailed("token", f"A token is required for authType {auth_type}.")
    if auth_type == AuthType.HEADER and not merged.get("headerName"):
        raise ValidationFailed("headerName", "A header name is required for authType header.")
    return merged


class ConnectionFields(TypedDict, total=False):
    """A connection's writable fields as the write serializer validates them; ``token`` and
    ``header_name`` are the credentials (stored encrypted)."""

    name: str
    url: str
    transport: str
    catalog_key: str
    auth_type: str
    token: str
    header_name: str
    enabled: bool


def _check_url(url: str, *, org_id: object) -> None:
    """The SSRF guard's check (a DNS lookup of up to a few seconds, within the org's share of the
    lookup threads), with no database connection held meanwhile. Connection writes are single
    statements after it, so no transaction waits on it."""
    release_connections()
    check_url(url, org_id=org_id)


def create_connection(*, org: Organization, data: ConnectionFields) -> Connection:
    entry = None
    if data.get("catalog_key"):
        entry = CatalogEntry.objects.filter(key=data["catalog_key"]).first()
        if entry is None:
            raise ValidationFailed("catalogKey", "Not a catalog entry.")
    url = data.get("url") or (entry.url_template if entry else "")
    if not url or "{" in url:
        raise ValidationFailed("url", "Give the server's URL (the catalog's template has a part to fill in).")
    _check_url(url, org_id=org.pk)
    transport = data.get("transport") or (entry.transport if entry else "streamable_http")
    auth_type = data.get("auth_type") or (entry.auth_type if entry else AuthType.NONE)
    credentials = _credentials(auth_type, data.get("token"), data.get("header_name"), {})
    return Connection.objects.create(
        organization=org,
        name=data.get("name") or (entry.name if entry else url),
        catalog_key=entry.key if entry else "",
        transport=transport,
        url=url,
        auth_type=auth_type,
        credentials_encrypted=encrypt_json(credentials),
        enabled=data.get("enabled", True),
    )


def _new_url(connection: Connection, url: str | None) -> str | None:
    """The URL a PUT asks for, or None when it keeps the stored one (no ``url``, the same URL, or the
    masked form the API shows, which would otherwise overwrite the hidden parts with ``***``)."""
    if url is None or url in (connection.url, masked_url(connection.url)):
        return None
    return url


def update_connection(*, connection: Connection, data: ConnectionFields) -> Connection:
    """A URL on another origin (scheme, host or port) drops the stored credentials, unless this
    request gives new ones: they were given for the old server, and must not reach the new one."""
    url = _new_url(connection, data.get("url"))
    moved = False
    if url is not None:
        _check_url(url, org_id=connection.organization_id)
        moved = origin_of(url) != origin_of(connection.url)
        connection.url = url
        connection.status = Connection.Status.PENDING
    for field in ("name", "transport", "enabled"):
        if field in data:
            setattr(connection, field, data[field])
    auth_type = data.get("auth_type", connection.auth_type)
    given = "token" in data or "header_name" in data
    if moved and not given:
        connection.auth_type = auth_type
        connection.credentials_encrypted = ""
    elif auth_type != connection.auth_type or given:
        kept = auth_type == connection.auth_type and not moved
        current = decrypt_json(connection.credentials_encrypted) if kept else {}
        credentials = _credentials(auth_type, data.get("token"), data.get("header_name"), current)
        connection.auth_type = auth_type
        connection.credentials_encrypted = encrypt_json(credentials)
    connection.save()
    return connection


def delete_connection(*, connection: Connection) -> None:
    """Its tools go with it, and so leave every specialist."""
    connection.delete()


def _apply_tools(connection: Connection, remote: list[RemoteTool]) -> SyncResult:
    existing = {tool.name: tool for tool in connection.tools.all()}
    seen: set[str] = set()
    added = updated = 0
    for item in remote:
        if item.name in seen:
            continue
        seen.add(item.name)
        tool = existing.get(item.name)
        if tool is None:
            Tool.objects.create(
                organization_id=connection.organization_id,
                connection=connection,
                name=item.name,
                description=item.description,
                input_schema=item.input_schema,
            )
            added += 1
        elif tool.description != item.description or tool.input_schema != item.input_schema:
            tool.description = item.description
            tool.input_schema = item.input_schema
            tool.save(update_fields=["description", "input_schema", "updated_at"])
            updated += 1
    gone = [tool.pk for name, tool in existing.items() if name not in seen]
    Tool.objects.for_org(connection.organization_id).filter(
        pk__in=gone
    ).delete()  # a vanished tool leaves every specialist too
    tools = list(connection.tools.order_by("name"))
    return SyncResult(added=added, updated=updated, removed=len(gone), tools=tools)


def sync_connection(*, connection: Connection) -> SyncResult:
    """initialize + tools/list (every page) with the SDK; the stored tools then match the server.
    A failure keeps the stored tools, records why, and raises 502 ``mcp_unreachable``. Call it
    outside a transaction: this thread's database connection is given back while the server is
    talked to (short transactions before and after, none around it)."""
    try:
        target = target_of(connection)
        release_connections()  # no pooled connection held while the server takes its time
        remote = async_to_sync(list_remote_tools)(target, time_limit=settings.MCP_SYNC_TIMEOUT_SECONDS)
    except (MCPError, DomainError, ValueError) as exc:
        reason = exc.detail if isinstance(exc, DomainError) else str(exc)
        Connection.objects.for_org(connection.organization_id).filter(pk=connection.pk).update(
            status=Connection.Status.ERROR, last_error=reason[:2000], updated_at=timezone.now()
        )
        raise MCPUnreachableError(f"Sync failed: {reason}") from exc
    with transaction.atomic():
        result = _apply_tools(connection, remote)
        Connection.objects.for_org(connection.organization_id).filter(pk=connection.pk).update(
            status=Connection.Status.CONNECTED, last_error="", last_synced_at=timezone.now(), updated_at=timezone.now()
        )
    return result


def set_tool_enabled(*, tool: Tool, enabled: bool) -> Tool:
    """The org's allow-list: a blocked tool is offered to no specialist (their lists keep it)."""
    tool.enabled = enabled
    tool.save(update_fields=["enabled", "updated_at"])
    return tool
