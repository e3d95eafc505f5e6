"""Webhook signatures, Stripe's scheme: ``LeanCore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>" keyed with the secret's UTF-8 bytes>``. The timestamp is the attempt's, so a receiver
can refuse old replays; the secret is never sent."""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "LeanCore-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  # a recognizable prefix, not a secret


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe text."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The header value for one attempt."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
