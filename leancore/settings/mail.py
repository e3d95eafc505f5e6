"""Email (Django 6.1 MAILERS, configured from the EMAIL_* environment variables)."""

from __future__ import annotations

from leancore.settings.env import BASE_DIR, DEBUG, env_bool, env_int, env_str

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
