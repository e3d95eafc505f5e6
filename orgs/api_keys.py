"""Org API keys: created and revoked by org admins (both in the org's audit trail), the secret shown
once and stored only as a hash, found by prefix in constant time."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import db
from core.errors import RateLimitedError, TokenNotValidError, ValidationFailed
from orgs.context import OrgContext, require_member, require_role
from orgs.models import ApiKey, AuditEntry, Role
from orgs.realtime import announce_api_key_revoked

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


# ``lastUsedAt`` is written at most once a minute per key: one UPDATE a minute, not one per request.
LAST_USED_PRECISION = timedelta(minutes=1)
# The specialists' table, read by id only: specialists sit above orgs in the floors, so a key's
# allow-list is checked against it with one statement rather than an import upwards.
_SPECIALIST_TABLE = "specialists_specialist"


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
    specialist_ids: Sequence[uuid.UUID] | None = None,
    monthly_credit_limit: Decimal | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    """A new key of the org, created by an admin (in the audit trail). ``specialist_ids`` must name
    the org's specialists (400 naming ``specialistIds``); empty is the same as none (every one)."""
    require_member(context)
    require_role(context, Role.ADMIN)
    context.refuse_for_keys("manage API keys")
    allowed = _org_specialists(context, specialist_ids) if specialist_ids else None
    secret = _random(SECRET_LENGTH)
    with transaction.atomic():
        while True:  # 62^8 prefixes: a collision is rare, and retried
            prefix = _random(PREFIX_LENGTH)
            if not ApiKey.objects.across_orgs("prefixes are unique across every org").filter(prefix=prefix).exists():
                break
        key = ApiKey.objects.create(
            organization=context.org,
            name=name,
            prefix=prefix,
            secret_hash=_hash(secret),
            role=role,
            specialist_ids=allowed,
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
    context.refuse_for_keys("manage API keys")
    with transaction.atomic():
        live = ApiKey.objects.for_org(context.org).filter(pk=key.pk, revoked_at__isnull=True)
        updated = live.update(revoked_at=timezone.now())
        if updated:
            key.refresh_from_db(fields=["revoked_at"])
            _audit(context=context, action="api_key.revoked", key=key)
            org_id, key_id = key.organization_id, key.pk
            transaction.on_commit(lambda: announce_api_key_revoked(org_id=org_id, api_key_id=key_id))


def find_api_key(raw: str) -> ApiKey | None:
    """The usable key (not revoked, not expired) a credential names, or None — the same answer, at
    the same cost, whether the prefix is unknown or the secret, revocation or expiry is wrong: one
    indexed read by prefix and one constant-time hash comparison in every case."""
    match = KEY_PATTERN.match(raw)
    prefix, secret = (match.group(1), match.group(2)) if match else ("", raw)
    by_prefix = ApiKey.objects.across_orgs("a credential names its key by prefix, whatever its org")
    key = by_prefix.select_related("organization").filter(prefix=prefix).first() if match else None
    expected = key.secret_hash if key is not None else _DECOY_HASH
    matches = hmac.compare_digest(expected.encode(), _hash(secret).encode())
    if key is None or not matches or not key.is_usable():
        return None
    return key


def _org_specialists(context: OrgContext, specialist_ids: Sequence[uuid.UUID]) -> list[str]:
    """The ids, each once, when every one names a specialist of the org; else 400."""
    wanted = list(dict.fromkeys(specialist_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {_SPECIALIST_TABLE} WHERE organization_id = %s "  # noqa: S608
            f"AND id IN ({', '.join(['%s'] * len(wanted))})",
            [context.org.pk, *wanted],
        )
        found = {db.read_uuid(row[0]) for row in cursor.fetchall()}
    missing = [value for value in wanted if value not in found]
    if missing:
        raise ValidationFailed("specialistIds", "Not found in this organization.")
    return [str(value) for value in wanted]


def use_api_key(raw: str) -> ApiKey:
    """The usable key a credential names, its use counted: 401 ``token_not_valid`` for an unknown,
    revoked or expired key (the same answer, at the same cost, for each), 429 once the key has spent
    its own rate (``THROTTLE_API_KEY``, counted across processes in the shared cache). ``lastUsedAt``
    is kept within a minute."""
    from core.throttles import over_limit  # noqa: PLC0415  # it imports DRF, whose settings import this module

    key = find_api_key(raw)
    if key is None:
        raise TokenNotValidError("The API key is unknown, revoked or expired.")
    wait = over_limit({f"throttle_api_key_{key.pk}": settings.THROTTLE_RATES["api_key"]}, what="Throttle 'api_key'")
    if wait is not None:
        raise RateLimitedError(math.ceil(wait or 1))
    now = timezone.now()
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_PRECISION:
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_PRECISION)
        ApiKey.objects.for_org(key.organization_id).filter(stale, pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def usable_api_key(key: ApiKey) -> ApiKey | None:
    """The key read again (an open WebSocket's recheck): None once revoked or expired."""
    found = ApiKey.objects.for_org(key.organization_id).select_related("organization")
    again = found.filter(pk=key.pk).first()
    return again if again is not None and again.is_usable() else None
