"""Accounts: users, passwords, tokens, invitations and password resets, sign-up credits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from leancore.settings.env import env_int, env_str
from leancore.settings.security import SECRET_KEY

AUTH_USER_MODEL = "accounts.User"

# Argon2 first: new passwords are hashed with it, and an older hash is rehashed with it at the next
# successful login (Django upgrades a hash whose hasher is not the first).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("ACCESS_TOKEN_LIFETIME", 15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_int("REFRESH_TOKEN_LIFETIME", 7 * 24 * 3600)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

INVITATION_TTL = timedelta(days=7)
PASSWORD_RESET_TTL = timedelta(hours=2)
SIGNUP_CREDITS = Decimal(env_str("SIGNUP_CREDITS", "100"))

# An open WebSocket reads its user and membership again this often (seconds; at most 60): a
# deactivated user or a removed member is closed 4403 within it.
WEBSOCKET_RECHECK_SECONDS = min(max(float(env_str("WEBSOCKET_RECHECK_SECONDS", "30")), 0.1), 60.0)
