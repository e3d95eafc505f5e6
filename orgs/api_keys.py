"""Org API keys: created and revoked by org admins (both in the org's audit trail), the secret shown
once and stored only as a hash, found by prefix in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from orgs.context import OrgContext, require_member, require_role
from orgs.models import ApiKey, AuditEntry, Role

PREFIX_LENGTH = 8
SECRET_LENGTH = 40  # ≥ 32 random characters: a sha256 of it cannot be reversed by guessing
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(rf"^lc_([A-Za-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$")
# Compared against when the prefix is unknown, so that the answer costs the same either way.
_DECOY_HASH = hashlib.sha256(b"no key has this secret").hexdigest()


def looks_like_key(raw: str) -> bool:
    """A bearer credential in an API key's shape (``lc_…``), as opposed to an access token."""
    return raw.startswith("lc_")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its full secret (``lc_<prefix>_<secret>``), which is never available again."""

    key: ApiKey
    secret: str


def _audit(*, context: OrgContext, action: str, key: ApiKey) -> None:
    AuditEntry.objects.create(
        actor=context.user,
        organization=context.org,
        action=action,
        object_type=ApiKey._meta.label,
        object_id=str(key.pk),
        object_repr=str(key)[:200],
        details={"name": key.name, "prefix": key.prefix, "role": key.role},
    )


def create_api_key(
    *,
    context: OrgContext,
    name: str,
    role: str = Role.MEMBER,
    monthly_credit_limit: Decimal | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    """A new key of the org, created by an admin (in the audit trail)."""
    require_member(context)
    require_role(context, Role.ADMIN)
    secret = _random(SECRET_LENGTH)
    with transaction.atomic():
        while True:  # 62^8 prefixes: a collision is rare, and retried
            prefix = _random(PREFIX_LENGTH)
            if not ApiKey.objects.filter(prefix=prefix).exists():
                break
        key = ApiKey.objects.create(
            organization=context.org,
            name=name,
            prefix=prefix,
            secret_hash=_hash(secret),
            role=role,
            monthly_credit_limit=monthly_credit_limit,
            expires_at=expires_at,
            created_by=context.user,
        )
        _audit(context=context, action="api_key.created", key=key)
    return CreatedKey(key=key, secret=f"lc_{prefix}_{secret}")


def revoke_api_key(*, context: OrgContext, key: ApiKey) -> None:
    """Revoked at once (every lookup reads the database: no process keeps a key); the record stays
    for the audit trail and the ledger. Revoking a revoked key changes nothing."""
    require_member(context)
    require_role(context, Role.ADMIN)
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            key.refresh_from_db(fields=["revoked_at"])
            _audit(context=context, action="api_key.revoked", key=key)


def find_api_key(raw: str) -> ApiKey | None:
    """The usable key (not revoked, not expired) a credential names, or None — the same answer, at
    the same cost, whether the prefix is unknown or the secret, revocation or expiry is wrong: one
    indexed read by prefix and one constant-time hash comparison in every case."""
    match = KEY_PATTERN.match(raw)
    prefix, secret = (match.group(1), match.group(2)) if match else ("", raw)
    key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first() if match else None
    expected = key.secret_hash if key is not None else _DECOY_HASH
    matches = hmac.compare_digest(expected.encode(), _hash(secret).encode())
    if key is None or not matches or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return None
    return key
