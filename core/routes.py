"""Paths are served with and without a trailing slash."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponseBase
from django.urls import URLPattern, path


def route(pattern: str, view: Callable[..., HttpResponseBase], name: str | None = None) -> list[URLPattern]:
    return [path(pattern, view, name=name), path(f"{pattern}/", view)]
