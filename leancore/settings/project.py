"""The Django project: its apps, middleware, URLs, templates, ASGI, time zone, static and media files."""

from __future__ import annotations

from pathlib import Path

from leancore.settings.env import BASE_DIR, DEBUG, env_str

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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
