"""LeanCore settings: every value comes from the environment (see README / .env.example)."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers as default_cors_headers
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG=true.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production-0123456789"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "corsheaders",
    "leancore",  # before django_tasks_db: its db_worker serves every queue by default
    "django_tasks_db",
    "accounts",
    "orgs",
    "webhooks",
    "billing",
    "signup",  # after billing: its admin registers the organizations page billing draws
    "files",
    "specialists",
    "mcps",
    "chat",
    "workspaces",
    "tasks",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",  # first: every answer carries X-Request-Id, every log line its id
    "core.middleware.MetricsMiddleware",  # every answer counted and timed (GET /metrics)
    "corsheaders.middleware.CorsMiddleware",  # outermost: every answer, problems included, can be read
    "core.middleware.ProblemMiddleware",
    "core.middleware.SecurityMiddleware",
    "core.middleware.RequestSizeMiddleware",
    "core.middleware.StaticFilesMiddleware",
    "core.middleware.SessionMiddleware",
    "core.middleware.CommonMiddleware",
    "core.middleware.CsrfViewMiddleware",
    "core.middleware.AuthenticationMiddleware",
    "core.middleware.MessageMiddleware",
    "core.middleware.XFrameOptionsMiddleware",
]

# Django's "middleware missing" warnings are wrong for LeanCore's subclasses of that middleware;
# leancore/checks.py runs Django's security checks as if each subclass were its parent instead.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "leancore.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "leancore.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# PostgreSQL: a bounded pool per process (psycopg's, built into Django). A process never holds more
# than DB_POOL_SIZE connections, whatever the concurrency; a request that waits longer than
# DB_POOL_TIMEOUT for one is answered 503 `service_unavailable` with Retry-After. DB_POOL_SIZE=0
# turns the pool off (then DB_CONN_MAX_AGE applies, as it does for SQLite).
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 10)
DB_POOL_TIMEOUT = float(env_str("DB_POOL_TIMEOUT", "10"))
# PostgreSQL: a live turn's start (its session, both messages and its hold) commits without waiting
# for the disk (``synchronous_commit = off`` for that one transaction; chat.turns.start_turn). The
# turn's end waits, and makes its start durable with it. A database crash within a fraction of a
# second of a start loses that start as a whole: nothing was billed, nothing is paid twice.
DB_FAST_TURN_START = env_bool("DB_FAST_TURN_START", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_SIZE > 0:
    from psycopg_pool import ConnectionPool

    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not
    DATABASES["default"]["ENGINE"] = "core.postgresql"  # Django's backend, the pool's waits timed (metrics)
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_SIZE),
        "max_size": DB_POOL_SIZE,
        "timeout": DB_POOL_TIMEOUT,
        "max_idle": 300,
        "check": ConnectionPool.check_connection,  # a connection broken by a database restart is replaced
        # While PostgreSQL is down the pool retries with a doubling delay; it gives up after a few
        # seconds, so that a request after the outage tries again at once instead of waiting out
        # a long backoff.
        "reconnect_timeout": 5,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent server + worker on one SQLite file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# --- Redis, cache and channel layer -------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "")  # deployments sharing one Redis keep apart
if REDIS_URL:
    from redis.exceptions import ConnectionError as RedisConnectionError

    # A consumer waits on Redis with a 5 s blocking pop; the client's read timeout must outlast it
    # (redis' default is also 5 s, and the race closes idle sockets with 1011).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "core.layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 10,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 15,
                        # a connection left from before a Redis restart fails once: one retry on a
                        # new connection, at once (while Redis is down that one is refused as fast)
                        "retry_on_error": [RedisConnectionError],
                    }
                ]
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "pool_class": "core.cache.SharedConnectionPool",
                "socket_connect_timeout": 1,  # a Redis that is gone fails fast (throttles fail open)
                "socket_timeout": 2,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "core.layers.ProcessChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Background work ----------------------------------------------------------------------
# "webhooks": webhook deliveries, served on threads of their own (leancore.worker)
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "webhooks"]}}
# Run the worker as a thread of the server process (single-process quick start without Redis).
EMBEDDED_WORKER = env_bool("EMBEDDED_WORKER", False)

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orgs.principal.PrincipalAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["djangorestframework_camel_case.render.CamelCaseJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "djangorestframework_camel_case.parser.CamelCaseJSONParser",
        "djangorestframework_camel_case.parser.CamelCaseMultiPartParser",
        "djangorestframework_camel_case.parser.CamelCaseFormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "core.filters.CamelOrderingFilter",
    ],
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.JSONFallbackNegotiation",
    "DEFAULT_METADATA_CLASS": "core.negotiation.MinimalMetadata",
    "DEFAULT_SCHEMA_CLASS": "leancore.schema.operations.LeanCoreAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Values under these keys are user data (tool arguments, results, JSON schemas): never re-cased.
JSON_CAMEL_CASE = {
    "JSON_UNDERSCOREIZE": {
        "no_underscore_before_number": False,
        "ignore_fields": ("arguments", "result", "input_schema", "inputSchema"),
        "ignore_keys": None,
    }
}


def _scaled_rate(rate: str, factor: int) -> str:
    count, _, period = rate.partition("/")
    return f"{int(count) * factor}/{period}"


# Proxies in front whose X-Forwarded-For is trusted for the client address (core.throttles
# .client_address): 0 = clients connect directly, the TCP peer is the client; 1 = one proxy that
# sets the header, the client is its last entry. No other header is ever trusted.
TRUSTED_PROXY_COUNT = max(env_int("TRUSTED_PROXY_COUNT", 0), 0)

# Throttle rates (DRF rate strings). Read at request time by core.throttles.
THROTTLE_RATES = {
    "login": env_str("THROTTLE_LOGIN", "10/min"),
    # sign-ups per client (each opens an org with sign-up credits); an IPv6 client is its /64
    "register": env_str("THROTTLE_REGISTER", "10/hour"),
    "chat": env_str("THROTTLE_CHAT", "60/min"),
    # per org, every member's sends together; unset: ten members' worth of THROTTLE_CHAT
    "chat_org": env_str("THROTTLE_CHAT_ORG", "") or _scaled_rate(env_str("THROTTLE_CHAT", "60/min"), 10),
    "upload": env_str("THROTTLE_UPLOAD", "30/min"),
    "mcp_sync": env_str("THROTTLE_MCP_SYNC", "10/min"),  # MCP syncs per org (each talks to an outside server)
    "mcp_write": env_str("THROTTLE_MCP_WRITE", "20/min"),  # MCP connections created/updated per org (DNS lookups)
    # webhooks created, re-pointed or pinged per org (each looks a host up or has the worker call it)
    "webhook_write": env_str("THROTTLE_WEBHOOK_WRITE", "20/min"),
    "websocket": env_str("THROTTLE_WEBSOCKET", "30/min"),  # WebSocket connections opened, per user
    "invite": env_str("THROTTLE_INVITE", "20/hour"),  # invitations sent (re-sends too), per org and per client
    "api_key": env_str("THROTTLE_API_KEY", "600/min"),  # requests made with one org API key, every process
}

# An open WebSocket reads its user and membership again this often (seconds; at most 60): a
# deactivated user or a removed member is closed 4403 within it.
WEBSOCKET_RECHECK_SECONDS = min(max(float(env_str("WEBSOCKET_RECHECK_SECONDS", "30")), 0.1), 60.0)

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

SPECTACULAR_SETTINGS = {
    "TITLE": "LeanCore API",
    "DESCRIPTION": (
        "Hire AI specialists: organizations, specialists, chat, MCP connections, credits, "
        "workspaces, projects and tasks. Every error is RFC 9457 problem+json with a stable `code`. "
        "Credits are decimal strings with 6 fractional digits. Lists are paginated "
        "(`page`, `pageSize` up to 100) and take `ordering` with camelCase field names.\n\n"
        "**WebSocket** `/ws/chat/sessions/{id}/`: authenticate with `?token=<accessToken>` or the "
        "subprotocol pair `bearer, <accessToken>` (the server then selects `bearer`). Every frame is "
        '`{"event": "<name>", "data": {...}}` with the chat stream\'s events, for every turn of the '
        'session, background turns included. Send `{"type": "message", "message": "…", '
        '"attachmentIds": [...]}` to start a turn; a frame that is not such JSON gets an `error` frame '
        "(`validation_error`) and the socket stays open, as it does when idle. Close codes: 4401 not "
        "authenticated, 4404 no such session or one you may not read.\n\n"
        "**Errors** list under `errors` a flat list of messages per camelCase field; a message about "
        "one item of a list field starts with its 0-based position (`item 2: …`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "CAMELIZE_NAMES": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "drf_spectacular.contrib.djangorestframework_camel_case.camelize_serializer_fields",
        "leancore.schema.hooks.add_problem_schema",
    ],
    "PREPROCESSING_HOOKS": ["leancore.schema.hooks.drop_trailing_slash_twins"],
    "ENUM_NAME_OVERRIDES": {
        "MemberRoleEnum": "orgs.models.Role",
        "ApiKeyRoleEnum": "orgs.models.API_KEY_ROLES",
        "MessageRoleEnum": "chat.models.Message.Role",
        "MemberStatusEnum": "orgs.models.Membership.Status",
        "MessageStatusEnum": "chat.models.Message.Status",
        "SpecialistStatusEnum": "specialists.models.Specialist.Status",
        "ConnectionStatusEnum": "mcps.models.Connection.Status",
        "CircuitStateEnum": "billing.models.Circuit.State",
        "ProjectStatusEnum": "tasks.models.Project.Status",
        "TaskStatusEnum": "tasks.models.Task.Status",
    },
}

# --- Email (Django 6.1 MAILERS, configured from the EMAIL_* environment variables) -----------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
_mail_options: dict[str, object] = {}
if EMAIL_BACKEND.endswith("smtp.EmailBackend"):
    _mail_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_str("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "use_ssl": env_bool("EMAIL_USE_SSL", False),
        "timeout": env_int("EMAIL_TIMEOUT", 10),
    }
elif EMAIL_BACKEND.endswith("filebased.EmailBackend"):
    _mail_options = {"file_path": env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))}
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND, "OPTIONS": _mail_options}}
del EMAIL_BACKEND
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "LeanCore <no-reply@leancore.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
FRONTEND_URL = env_str("FRONTEND_URL", "http://localhost:8000")
INVITATION_TTL = timedelta(days=7)
PASSWORD_RESET_TTL = timedelta(hours=2)

# --- Product settings ---------------------------------------------------------------------
SIGNUP_CREDITS = Decimal(env_str("SIGNUP_CREDITS", "100"))
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 10 * 1024 * 1024)
STORAGE_QUOTA_BYTES = env_int("STORAGE_QUOTA_BYTES", 1024 * 1024 * 1024)
# The largest request body of any kind (413 `request_too_large` above it): room for one upload. A
# larger body to an upload endpoint answers `file_too_large`, stating UPLOAD_MAX_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("REQUEST_MAX_BYTES", max(UPLOAD_MAX_BYTES * 2, 2_621_440))
# An upload's text extraction (a PDF's in a child process, killed at the time limit): a file whose
# text cannot be extracted within these bounds is stored with no text (`textExtracted: false`).
UPLOAD_EXTRACT_SECONDS = float(env_str("UPLOAD_EXTRACT_SECONDS", "10"))
UPLOAD_EXTRACT_MAX_CHARS = env_int("UPLOAD_EXTRACT_MAX_CHARS", 1_000_000)
# PDF extractions (each a child process of up to UPLOAD_EXTRACT_SECONDS of CPU and 1 GiB) running at
# once per server process; an upload that finds them all busy for a second is stored without text.
UPLOAD_EXTRACT_CONCURRENCY = max(1, env_int("UPLOAD_EXTRACT_CONCURRENCY", 2))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_HEADERS = (*default_cors_headers, "x-org-id", "idempotency-key")
CORS_PREFLIGHT_MAX_AGE = 600
CORS_EXPOSE_HEADERS = ["Retry-After"]
WIZARD_MODEL = env_str("WIZARD_MODEL")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
# A provider that goes quiet: the call fails after this many seconds without a byte (before the first
# token or between two), the turn ends `failed` and what was produced is billed.
LLM_IDLE_TIMEOUT = float(env_str("LLM_IDLE_TIMEOUT", "60"))
LLM_CONNECT_TIMEOUT = float(env_str("LLM_CONNECT_TIMEOUT", "10"))
# A provider whose answer has not started (no first byte) within this many seconds: the call is
# given up before any output, retried once, then the specialist's fallback models are tried.
LLM_FIRST_BYTE_TIMEOUT = float(env_str("LLM_FIRST_BYTE_TIMEOUT", "30"))
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
MCP_ALLOW_PRIVATE_NETWORKS = env_bool("MCP_ALLOW_PRIVATE_NETWORKS", False)
# Exact origins (scheme://host:port, comma-separated) let through the SSRF guard although they are
# private or loopback, e.g. the demo MCP server that run.sh starts (http://127.0.0.1:8765). Every
# other private address stays refused. Empty in production.
MCP_ALLOWED_PRIVATE_URLS = env_list("MCP_ALLOWED_PRIVATE_URLS")
MCP_SYNC_TIMEOUT_SECONDS = float(env_str("MCP_SYNC_TIMEOUT_SECONDS", "20"))
MCP_TOOL_TIMEOUT_SECONDS = float(env_str("MCP_TOOL_TIMEOUT_SECONDS", "30"))
# An MCP response (over SSE: a whole session's stream) larger than this fails the call: 502
# `mcp_unreachable` for a sync, a tool error in a turn. It is counted as it arrives, never buffered whole.
MCP_MAX_RESPONSE_BYTES = env_int("MCP_MAX_RESPONSE_BYTES", 4 * 1024 * 1024)
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY")
# A hold of a call made outside any turn (the specialist wizard's, within one request) older than
# this is treated as abandoned (a crashed process) and released. A turn's holds last while the turn
# is queued or running, however long; they go with it when it ends or its process is lost.
RESERVATION_TTL = timedelta(seconds=env_int("RESERVATION_TTL_SECONDS", 15 * 60))
# A running turn renews its lease every TURN_HEARTBEAT_SECONDS; one whose lease is older than
# TURN_LEASE_SECONDS lost its process (a killed worker or server): maintenance, which runs every
# MAINTENANCE_INTERVAL_SECONDS, fails it, releases its holds and tells its WebSocket watchers.
TURN_HEARTBEAT_SECONDS = float(env_str("TURN_HEARTBEAT_SECONDS", "10"))
TURN_LEASE_SECONDS = float(env_str("TURN_LEASE_SECONDS", "60"))
MAINTENANCE_INTERVAL_SECONDS = float(env_str("MAINTENANCE_INTERVAL_SECONDS", "60"))
# A queued turn (an async chat turn, a task run) that no worker started within TURN_QUEUE_TIMEOUT
# seconds fails with `queue_timeout` and costs nothing (its hold is given back): the worker checks
# when it picks the turn up, and maintenance fails those still waiting.
TURN_QUEUE_TIMEOUT = float(env_str("TURN_QUEUE_TIMEOUT", "3600"))
# Every event of a turn is kept (Redis with REDIS_URL, else in the process) from its start until
# STREAM_REPLAY_SECONDS after it ends: GET /api/chat/messages/{id}/events and the WebSocket's
# `resume` frame replay it; later, 410 `events_expired` (the session's messages hold the result).
STREAM_REPLAY_SECONDS = max(1, env_int("STREAM_REPLAY_SECONDS", 600))
# How many turns one worker process (`manage.py db_worker`) runs at once; while other orgs' turns
# wait, one org's turns take at most half of them (at least one).
WORKER_TURN_CONCURRENCY = max(1, env_int("WORKER_TURN_CONCURRENCY", 4))
# Webhook deliveries: a worker process makes WEBHOOK_WORKER_CONCURRENCY attempts at once, on threads of
# their own (never a turn's), one org at most half of them. An attempt that gets no 2xx answer within
# WEBHOOK_TIMEOUT_SECONDS (the name lookup included) fails and is retried later; of an answer only its
# status and the first WEBHOOK_RESPONSE_PREVIEW_BYTES (for the delivery log) are read.
WEBHOOK_WORKER_CONCURRENCY = max(1, env_int("WEBHOOK_WORKER_CONCURRENCY", 4))
WEBHOOK_TIMEOUT_SECONDS = float(env_str("WEBHOOK_TIMEOUT_SECONDS", "10"))
WEBHOOK_RESPONSE_PREVIEW_BYTES = max(0, env_int("WEBHOOK_RESPONSE_PREVIEW_BYTES", 1024))
# Events (their bodies and delivery logs) are kept this many days, then maintenance drops them.
WEBHOOK_RETENTION_DAYS = max(1, env_int("WEBHOOK_RETENTION_DAYS", 30))

# GET /metrics (Prometheus text) answers only with `Authorization: Bearer <METRICS_TOKEN>`; unset, it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Security (production) ----------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health$"]  # a load balancer's plain-HTTP probe is answered, not redirected
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# LOG_FORMAT=json: one JSON object per line (time, level, logger, message and the ids of the request
# or turn: requestId, orgId, userId, messageId), Daphne's access log included; text: the message alone.
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be text or json.")
logging.captureWarnings(LOG_FORMAT == "json")  # a library's warning is a JSON line too
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "ids": {"()": "core.log_context.ContextFilter"},
        "mask_urls": {"()": "mcps.masking.MaskUrlsFilter"},  # no URL userinfo or query value in a log line
    },
    "formatters": {"json": {"()": "core.log_context.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["ids"],
            **({"formatter": "json"} if LOG_FORMAT == "json" else {}),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives "django" a console handler of its own under DEBUG; records
        # would print twice (there and at the root). Everything goes to the root handler once.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"level": "ERROR"},
        # The HTTP clients log every request's full URL at INFO (an MCP URL may carry credentials in
        # its userinfo or query): every line they or the MCP SDK write has its URLs masked
        # (mcps.masking), at any LOG_LEVEL; httpcore's per-request DEBUG traces are not written.
        **{name: {"filters": ["mask_urls"]} for name in ("httpx", "httpx2")},
        **{name: {"level": "WARNING", "filters": ["mask_urls"]} for name in ("httpcore", "httpcore2")},
        **{
            name: {"filters": ["mask_urls"]}
            for name in (
                "mcp.client.client",
                "mcp.client.streamable_http",
                "mcp.client.sse",
                "mcp.client.auth.oauth2",
                "mcp.shared.jsonrpc_dispatcher",
                "mcp.shared.dispatcher",
                "client",  # mcp.client.session's
            )
        },
    },
}
