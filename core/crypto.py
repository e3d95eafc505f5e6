"""Credentials at rest: Fernet with FIELD_ENCRYPTION_KEY, its own key(s), never the SECRET_KEY.

``FIELD_ENCRYPTION_KEY`` is a comma-separated list of Fernet keys: the first encrypts, every one
decrypts (``MultiFernet``), so a key is rotated by putting the new one first and running
``manage.py rotate_field_key`` before the old one is dropped. Without it (development: ``check
--deploy`` refuses it with DEBUG off) a key derived from SECRET_KEY serves, as it did before: the
same command (``--from-secret-key``) re-encrypts what that key wrote."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def configured_keys(value: str | None = None) -> list[str]:
    """The keys of ``FIELD_ENCRYPTION_KEY`` (or of ``value``), first the one that encrypts."""
    raw = settings.FIELD_ENCRYPTION_KEY if value is None else value
    return [key.strip() for key in (raw or "").split(",") if key.strip()]


def invalid_keys(value: str | None = None) -> list[int]:
    """The positions (from 1) of the configured keys that are no Fernet key."""
    bad = []
    for position, key in enumerate(configured_keys(value), start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            bad.append(position)
    return bad


def derived_key(secret: str) -> bytes:
    """The key earlier releases derived from SECRET_KEY (what the JWTs are signed with)."""
    digest = hashlib.sha256(f"leancore-field-encryption:{secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest)


@functools.cache
def _fernet(keys: tuple[str, ...], secret: str) -> MultiFernet:
    if keys:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    return MultiFernet([Fernet(derived_key(secret))])


def fernet() -> MultiFernet:
    """Encrypts with the first configured key; decrypts with any of them (and only them)."""
    return _fernet(tuple(configured_keys()), settings.SECRET_KEY)


def rotation_fernet(*, from_secret_key: bool) -> MultiFernet:
    """For re-encrypting: the configured keys, the first one encrypting, plus (``from_secret_key``)
    the key derived from the current SECRET_KEY for reading what it wrote."""
    keys = [Fernet(key.encode()) for key in configured_keys()]
    if from_secret_key:
        keys.append(Fernet(derived_key(settings.SECRET_KEY)))
    return MultiFernet(keys)


def encrypt_json(value: Mapping[str, str]) -> str:
    """Credentials (names to secret strings) as one token."""
    if not value:
        return ""
    return fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        credentials: dict[str, str] = json.loads(fernet().decrypt(token.encode()))  # what encrypt_json wrote
        return credentials
    except InvalidToken as exc:
        raise ValueError("The stored credentials cannot be decrypted with the current key.") from exc
