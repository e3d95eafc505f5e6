"""What each operation does, for API users: its view's own ``extend_schema``, or else the entry of its
app's ``api_descriptions`` module (``DESCRIPTIONS``, keyed by the operation's path and method as the
schema names them), next to the views of that app. The schema adds who may call it and every error
status with its codes from the registry, so a description names neither."""

from __future__ import annotations

import functools
import re
from importlib import import_module
from types import ModuleType

from django.apps import apps
from rest_framework.views import APIView

from core import errors as e

MODULE = "api_descriptions"


def schema_path(path: str) -> str:
    """A route's path as the schema names it: camelCase path parameters (``{org_id}`` → ``{orgId}``)."""
    return re.sub(r"\{([^}]+)\}", lambda match: "{" + e.camelize_key(match.group(1)) + "}", path)


@functools.cache
def descriptions_module(package: str) -> ModuleType | None:
    """The ``api_descriptions`` module of an app's package; None when it has none."""
    name = f"{package}.{MODULE}"
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def description_of(view: APIView, path: str, method: str) -> str:
    """The description, in the view's own app, of the operation at ``path`` and ``method``."""
    module = descriptions_module(type(view).__module__.split(".", 1)[0])
    table: dict[tuple[str, str], str] = getattr(module, "DESCRIPTIONS", {})
    return table.get((schema_path(path), method.lower()), "")


def described_operations() -> dict[tuple[str, str], tuple[str, str]]:
    """Every entry of every app's table: ``(path, method) -> (app, description)``."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for config in apps.get_app_configs():
        module = descriptions_module(config.name)
        for key, text in getattr(module, "DESCRIPTIONS", {}).items():
            found[key] = (config.name, text)
    return found
