"""``check --deploy`` for LeanCore's middleware: Django's security checks look for its own middleware
by dotted path, and LeanCore runs subclasses of them (``core.middleware``, hooks on the event
loop). Without this, Django reports them missing (W001–W003) and, believing them absent, skips the
checks of the settings they apply (HSTS, SSL redirect, nosniff, referrer policy, X-Frame-Options,
CSRF and session cookies). This runs Django's own security checks again as if each subclass were
the middleware it extends, and reports what only that run finds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.test.utils import override_settings
from django.utils.module_loading import import_string

from core.crypto import configured_keys, invalid_keys

SECURITY_MODULES = ("django.core.checks.security.",)
# Django's "middleware missing" warnings are silenced in settings (they are false for the
# subclasses); a middleware that is really missing is reported under these ids instead.
RENAMED = {"security.W001": "leancore.W001", "security.W002": "leancore.W002", "security.W003": "leancore.W003"}


def _as_django_paths(middleware: list[str]) -> list[str]:
    mapped = []
    for path in middleware:
        cls = import_string(path)
        parent = next(
            (
                base
                for base in cls.__mro__[1:]
                if base.__module__.startswith("django.") and "Middleware" in base.__name__
            ),
            None,
        )
        mapped.append(f"{parent.__module__}.{parent.__qualname__}" if parent is not None else path)
    return mapped


def _security_checks() -> list[Callable[..., Iterable[checks.CheckMessage]]]:
    registered = checks.registry.registry.get_checks(include_deployment_checks=True)
    return [check for check in registered if getattr(check, "__module__", "").startswith(SECURITY_MODULES)]


@checks.register(checks.Tags.security, deploy=True)
def security_of_the_subclassed_middleware(
    app_configs: Sequence[AppConfig] | None, **kwargs: object
) -> list[checks.CheckMessage]:
    security = _security_checks()
    as_configured = {message.id for check in security for message in check(app_configs=app_configs)}
    found: list[checks.CheckMessage] = []
    with override_settings(MIDDLEWARE=_as_django_paths(list(settings.MIDDLEWARE))):
        for check in security:
            for message in check(app_configs=app_configs):
                if message.id in RENAMED:
                    message.id = RENAMED[message.id]
                elif message.id in as_configured:
                    continue  # Django reports it already
                found.append(message)
    return found


@checks.register(checks.Tags.security, deploy=True)
def mcp_private_addresses_in_production(
    app_configs: Sequence[AppConfig] | None, **kwargs: object
) -> list[checks.CheckMessage]:
    """The SSRF guard's ways round it are for development: a deployment (DEBUG off) that opens one
    lets an organization's MCP URL reach this machine's network."""
    if settings.DEBUG:
        return []
    found: list[checks.CheckMessage] = []
    if settings.MCP_ALLOW_PRIVATE_NETWORKS:
        found.append(
            checks.Warning(
                "MCP_ALLOW_PRIVATE_NETWORKS is on with DEBUG off: MCP URLs may reach private addresses.",
                id="leancore.W010",
            )
        )
    if settings.MCP_ALLOWED_PRIVATE_URLS:
        found.append(
            checks.Warning(
                f"MCP_ALLOWED_PRIVATE_URLS lets private origins through with DEBUG off: "
                f"{', '.join(settings.MCP_ALLOWED_PRIVATE_URLS)}.",
                id="leancore.W011",
            )
        )
    return found


@checks.register(checks.Tags.security)
def field_encryption_keys_are_fernet_keys(
    app_configs: Sequence[AppConfig] | None, **kwargs: object
) -> list[checks.CheckMessage]:
    """Every key of FIELD_ENCRYPTION_KEY must be a Fernet key (else nothing can be encrypted)."""
    bad = invalid_keys()
    if not bad:
        return []
    return [
        checks.Error(
            f"FIELD_ENCRYPTION_KEY: key(s) at position {', '.join(map(str, bad))} are no Fernet key.",
            hint="Make one: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
            id="leancore.E002",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def field_encryption_key_in_production(
    app_configs: Sequence[AppConfig] | None, **kwargs: object
) -> list[checks.CheckMessage]:
    """Stored credentials need their own key in a deployment: without one they are encrypted with a
    key derived from SECRET_KEY, so whoever holds the JWT signing key reads every MCP credential, and
    rotating SECRET_KEY makes them unreadable."""
    if settings.DEBUG or configured_keys():
        return []
    return [
        checks.Error(
            "FIELD_ENCRYPTION_KEY is not set with DEBUG off: MCP credentials are encrypted with a key derived "
            "from SECRET_KEY.",
            hint=(
                "Set FIELD_ENCRYPTION_KEY to a Fernet key (Fernet.generate_key()), then run "
                "`manage.py rotate_field_key --from-secret-key` to re-encrypt what is stored."
            ),
            id="leancore.E001",
        )
    ]


METRICS_TOKEN_MIN_LENGTH = 32


@checks.register(checks.Tags.security, deploy=True)
def metrics_token_in_production(app_configs: Sequence[AppConfig] | None, **kwargs: object) -> list[checks.CheckMessage]:
    """GET /metrics is guarded by METRICS_TOKEN alone: a deployment (DEBUG off) without one has no
    metrics (a warning); one with a short token lets a guess read the install's traffic and spend
    (an error)."""
    if settings.DEBUG:
        return []
    hint = "Make one: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if not settings.METRICS_TOKEN:
        return [
            checks.Warning(
                "METRICS_TOKEN is not set with DEBUG off: GET /metrics answers 404 and Prometheus has nothing "
                "to scrape.",
                hint=hint,
                id="leancore.W020",
            )
        ]
    if len(settings.METRICS_TOKEN) < METRICS_TOKEN_MIN_LENGTH:
        return [
            checks.Error(
                f"METRICS_TOKEN is shorter than {METRICS_TOKEN_MIN_LENGTH} characters: a guessable bearer "
                "token guards GET /metrics.",
                hint=hint,
                id="leancore.E020",
            )
        ]
    return []
