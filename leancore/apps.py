from __future__ import annotations

from django.apps import AppConfig


class LeancoreConfig(AppConfig):
    name = "leancore"

    def ready(self) -> None:
        from leancore import checks  # noqa: F401 -- registers the deploy check of the middleware
