"""Content negotiation and OPTIONS answers for every API view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            renderer = renderers[0]
            return renderer, renderer.media_type


def accepts_any(request: Request, media_types: tuple[str, ...]) -> bool:
    """True when the request has no Accept header or it accepts one of ``media_types``
    (wildcards included, ``q=0`` excluded)."""
    if not request.headers.get("Accept", "").strip():
        return True
    return any(request._request.accepts(media_type) for media_type in media_types)


class MinimalMetadata(BaseMetadata):
    """``OPTIONS`` describes the endpoint without touching any object (no lookups, no org data)."""

    def determine_metadata(self, request: Request, view: APIView) -> dict[str, Any]:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }
