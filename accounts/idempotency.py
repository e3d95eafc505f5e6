"""Idempotency-Key handling: a repeat with the same key and body returns the first result."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter

from accounts.models import IdempotencyRecord, User
from core.errors import IdempotencyKeyReusedError, ValidationFailed

KEY_TTL = timedelta(hours=24)
# An action's answer: its status and body (what a repeat with the same key is given again).
type Result[B: Mapping[str, object]] = tuple[int, B]

# The header as the OpenAPI schema documents it on every operation that honours it.
IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="A repeat with the same key and body returns the first result; a different body → 409.",
)


def _hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _existing(caller: str, scope: str, key: str, request_hash: str) -> IdempotencyRecord | None:
    record = IdempotencyRecord.objects.filter(caller=caller, scope=scope, key=key).first()
    if record is None:
        return None
    if record.created_at < timezone.now() - KEY_TTL:
        record.delete()
        return None
    if record.request_hash != request_hash:
        raise IdempotencyKeyReusedError
    return record


def run_idempotent[B: Mapping[str, object]](
    *,
    caller: str,
    user: User | None,
    scope: str,
    key: str | None,
    payload: object,
    action: Callable[[], Result[B]],
    replay: Callable[[IdempotencyRecord], Result[B]] | None = None,
) -> tuple[Result[B], bool]:
    """Runs ``action`` once per (caller, scope, key): ``caller`` is the user's id or an org API key's
    ``key:<id>`` (``user`` the user, if any). Returns (result, replayed)."""
    if not key:
        return action(), False
    if len(key) > 255:
        raise ValidationFailed("Idempotency-Key", "Must be at most 255 characters.")
    request_hash = _hash(payload)

    def answer(record: IdempotencyRecord) -> tuple[Result[B], bool]:
        if replay is not None:
            return replay(record), True
        return (record.response_status, record.response_body), True

    record = _existing(caller, scope, key, request_hash)
    if record is not None:
        return answer(record)
    try:
        with transaction.atomic():
            status, body = action()
            IdempotencyRecord.objects.create(
                user=user,
                caller=caller,
                scope=scope,
                key=key,
                request_hash=request_hash,
                response_status=status,
                response_body=json.loads(json.dumps(body, default=str)),
            )
            return (status, body), False
    except IntegrityError:
        # A concurrent request with the same key won; its work stands and ours was rolled back.
        record = _existing(caller, scope, key, request_hash)
        if record is None:
            raise
        return answer(record)
