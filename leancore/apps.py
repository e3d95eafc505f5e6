from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig

from core import col_identity


class LeancoreConfig(AppConfig):
    name = "leancore"

    def ready(self) -> None:
        import_module("leancore.checks")  # registers the deploy check of the middleware
        col_identity.install()
