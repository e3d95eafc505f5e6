"""Paths are served with and without a trailing slash."""

from __future__ import annotations

from django.urls import URLPattern, path


def route(pattern: str, view, name: str | None = None) -> list[URLPattern]:  # noqa: ANN001
    return [path(pattern, view, name=name), path(f"{pattern}/", view)]
