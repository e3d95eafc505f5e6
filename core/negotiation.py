"""Content negotiation and OPTIONS answers for every API view."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from rest_framework.exceptions import NotAcceptable
from rest_framework.metadata import BaseMetadata
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.views import APIView


class JSONFallbackNegotiation(DefaultContentNegotiation):
    """The API speaks JSON (and problem+json): a client whose Accept header names something else
    still gets JSON rather than a 406 nobody can act on. Views that produce more than one media type
    (the chat stream) check the Accept header themselves."""

    def select_renderer(
        self,
        request: Request,
        renderers: list[BaseRenderer],  # type: ignore[override]  # DRF hands it a list
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        try:
            selected: tuple[BaseRenderer, str] = super().select_renderer(request, renderers, format_suffix)
            return selected
        except NotAcceptable:
            renderer = renderers[0]
            return renderer, renderer.media_type


def _media_ranges(header: str) -> list[tuple[str, str, float]]:
    """``Accept`` as (type, subtype, q); parameters other than ``q`` (``charset=utf-8``) do not narrow."""
    ranges = []
    for item in header.split(","):
        parts = [part.strip() for part in item.split(";")]
        kind, _, subtype = parts[0].lower().partition("/")
        if not kind:
            continue
        quality = 1.0
        for parameter in parts[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((kind, subtype or "*", quality))
    return ranges


def accepts_any(request: Request | HttpRequest, media_types: tuple[str, ...]) -> bool:
    """True when the request has no Accept header or it accepts one of ``media_types``
    (wildcards included, ``q=0`` excluded)."""
    header = request.headers.get("Accept", "").strip()
    if not header:
        return True
    for media_type in media_types:
        kind, _, subtype = media_type.partition("/")
        for range_kind, range_subtype, quality in _media_ranges(header):
            if quality > 0 and range_kind in (kind, "*") and range_subtype in (subtype, "*"):
                return True
    return False


class MinimalMetadata(BaseMetadata):
    """``OPTIONS`` describes the endpoint without touching any object (no lookups, no org data)."""

    def determine_metadata(self, request: Request, view: APIView) -> dict[str, object]:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }
