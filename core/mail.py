"""Sending the product's emails: after the data they describe is committed, and never at the cost of
the request that caused them (an unreachable mail server is logged, not a 500)."""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.db import transaction

logger = logging.getLogger(__name__)


def send_now(subject: str, body: str, recipients: list[str]) -> bool:
    try:
        send_mail(subject, body, None, recipients)
    except Exception:
        logger.exception("Could not send %r to %s", subject, ", ".join(recipients))
        return False
    return True


def send_on_commit(subject: str, body: str, recipients: list[str]) -> None:
    transaction.on_commit(lambda: send_now(subject, body, recipients))
