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


def member_group(org_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"member.{org_id}.{user_id}"


def announce_membership_changed(*, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tells the member's open sockets in the org to read their access again (a removed member's
    close with 4403). A channel layer that cannot be reached (within NOTICE_TIMEOUT_SECONDS) loses
    only the notice: every message a socket sends is checked against the membership."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def notify() -> None:
        async with asyncio.timeout(NOTICE_TIMEOUT_SECONDS):
            await layer.group_send(member_group(org_id, user_id), {"type": MEMBERSHIP_CHANGED})

    try:
        async_to_sync(notify)()
    except Exception:
        logger.exception("Could not announce the change of member %s in %s", user_id, org_id)
