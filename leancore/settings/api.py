"""The HTTP API: REST framework, camelCase JSON, the OpenAPI schema, CORS, throttles."""

from __future__ import annotations

from corsheaders.defaults import default_headers as default_cors_headers

from leancore.settings.env import env_int, env_list, env_str

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orgs.principal.PrincipalAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.CachedCamelCaseJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "djangorestframework_camel_case.parser.CamelCaseJSONParser",
        "djangorestframework_camel_case.parser.CamelCaseMultiPartParser",
        "djangorestframework_camel_case.parser.CamelCaseFormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": [
        "core.filter_backends.FilterSetBackend",
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
    "GET_LIB_DOC_EXCLUDES": "leancore.schema.hooks.lib_doc_excludes",
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

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_HEADERS = (*default_cors_headers, "x-org-id", "idempotency-key")
CORS_PREFLIGHT_MAX_AGE = 600
CORS_EXPOSE_HEADERS = ["Retry-After"]


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
