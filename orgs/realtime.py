"""Live notices about memberships, over the channel layer: a member's open WebSockets in an org
listen on ``member_group(org, user)`` and close when the membership goes."""

from __future__ import annotations

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

MEMBERSHIP_REMOVED = "membership.removed"


def member_group(org_id: uuid.UUID | str, user_id: uuid.UUID | str) -> str:
    return f"member.{org_id}.{user_id}"


def announce_membership_removed(*, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tells the member's open sockets in the org to close (4403). A channel layer that cannot be
    reached loses only the notice: every message a socket sends is checked against the membership."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(member_group(org_id, user_id), {"type": MEMBERSHIP_REMOVED})
    except Exception:
        logger.exception("Could not announce the removal of member %s from %s", user_id, org_id)
