from __future__ import annotations

import functools
from pathlib import Path

from django.contrib import admin
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.request import Request

from accounts.admin_login import admin_login
from core.errors import NotFoundError, error_response
from core.metrics_export import metrics_view
from core.routes import route
from core.url_index import IndexedPatterns
from leancore.health import HealthView


class PublicSchemaView(SpectacularAPIView):
    access = "public"
    authentication_classes = []


# The docs pages load everything from this server: the browser is told so (Redoc's bundle would
# otherwise fetch its footer logo from the vendor's CDN).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


class _SameOriginDocs:
    """A mixin of the docs pages' views (DRF's ``APIView`` next in line)."""

    def options(self, request: Request, *args: object, **kwargs: object) -> HttpResponse:
        """HTML pages: OPTIONS answers with the allowed methods and no body."""
        return HttpResponse(status=200, headers={"Allow": "GET, HEAD, OPTIONS"})

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: object, **kwargs: object
    ) -> HttpResponseBase:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]  # APIView's
        response["Content-Security-Policy"] = DOCS_CSP
        return response


class PublicSwaggerView(_SameOriginDocs, SpectacularSwaggerView):  # type: ignore[misc]  # plain responses, stubs: Response
    access = "public"
    authentication_classes = []


class PublicRedocView(_SameOriginDocs, SpectacularRedocView):  # type: ignore[misc]  # plain responses, stubs: Response
    access = "public"
    authentication_classes = []
    template_name = "leancore/redoc.html"

    @staticmethod
    def _redoc_standalone() -> str:
        return "/api/redoc/redoc.standalone.js"


REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
# The bundle's footer logo is the one thing it fetches from the vendor: a blank image instead.
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_SVG = "data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"


@functools.cache
def _redoc_bundle() -> bytes:
    found = finders.find(REDOC_BUNDLE)
    if not isinstance(found, str):
        raise LookupError(f"{REDOC_BUNDLE} is not among the static files.")
    return Path(found).read_text(encoding="utf-8").replace(REDOC_CDN_LOGO, BLANK_SVG).encode()


def redoc_bundle(request: HttpRequest) -> HttpResponse:
    """Redoc's bundle as shipped, with nothing in it that reaches another host."""
    return HttpResponse(
        _redoc_bundle(), content_type="application/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


redoc_bundle.access = "public"  # type: ignore[attr-defined]  # the access mark every view carries


def unknown_path(request: HttpRequest, rest: str = "") -> JsonResponse:
    """A path no route serves: problem+json 404, in development too (DEBUG's HTML page is for
    browsers, not API clients). The admin keeps its own pages."""
    return error_response(NotFoundError())


unknown_path.access = "public"  # type: ignore[attr-defined]  # the access mark every view carries
admin_redirect = RedirectView.as_view(url="/admin/", permanent=False)
admin_redirect.access = "public"  # type: ignore[attr-defined]  # the access mark every view carries
unknown_path.csrf_exempt = True  # type: ignore[attr-defined]  # Django's mark, read by the CSRF middleware

admin.site.site_header = "LeanCore operations"
admin.site.site_title = "LeanCore admin"

# Tried by a path's first segment (core.url_index): the routes of the apps listed last are found as
# fast as the first.
urlpatterns = [
    IndexedPatterns(
        [
            path("admin/login/", admin_login),  # before the admin's own: its sign-in, limited as /auth/login
            path("admin/", admin.site.urls),
            *route("api/schema", PublicSchemaView.as_view(), name="schema"),
            *route("api/docs", PublicSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
            *route("api/redoc", PublicRedocView.as_view(url_name="schema"), name="redoc"),
            path("api/redoc/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
            *route("health", HealthView.as_view(), name="health"),
            path("metrics", metrics_view, name="metrics"),  # operators' Prometheus scrape, not in the API schema
            path("", include("accounts.urls")),
            path("", include("orgs.urls")),
            path("", include("signup.urls")),
            path("", include("billing.urls")),
            path("", include("specialists.urls")),
            path("", include("chat.urls")),
            path("", include("mcps.urls")),
            path("", include("webhooks.urls")),
            path("", include("workspaces.urls")),
            path("", include("tasks.urls")),
            path("admin", admin_redirect),
            re_path(r"^(?!admin(?:/|$))(?P<rest>.*)$", unknown_path, name="unknown-path"),
        ]
    )
]

handler400 = "core.errors.handler400"
handler403 = "core.errors.handler403"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
