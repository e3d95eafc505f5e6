"""Live notices about memberships, over the channel layer: a member's open WebSockets in an org
listen on ``member_group(org, user)`` and close when the membership goes."""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

MEMBERSHIP_CHANGED = "membership.changed"
NOTICE_TIMEOUT_SECONDS = 2.0


def member_group(org_id: uuid.UUID, user_id: uuid.UUID | None = None, *, api_key_id: uuid.UUID | None = None) -> str:
    """The group of a caller's open sockets in an org: a member's, or an org API key's."""
    return f"member.{org_id}.key-{api_key_id}" if api_key_id is not None else f"member.{org_id}.{user_id}"


def _announce(group: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def notify() -> None:
        async with asyncio.timeout(NOTICE_TIMEOUT_SECONDS):
            await layer.group_send(group, {"type": MEMBERSHIP_CHANGED})

    try:
        async_to_sync(notify)()
    except Exception:
        logger.exception("Could not announce an access change to %s", group)


def announce_membership_changed(*, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tells the member's open sockets in the org to read their access again (a removed member's
    close with 4403). A channel layer that cannot be reached (within NOTICE_TIMEOUT_SECONDS) loses
    only the notice: every message a socket sends is checked against the membership."""
    _announce(member_group(org_id, user_id))


def announce_api_key_revoked(*, org_id: uuid.UUID, api_key_id: uuid.UUID) -> None:
    """Tells the key's open sockets to read it again: revoked, they close with 4401 (and within
    ``WEBSOCKET_RECHECK_SECONDS`` even if this notice is lost)."""
    _announce(member_group(org_id, api_key_id=api_key_id))
