"""The admin's sign-in, limited as the API's login is: the same failure counts per email and per
client address (``core.throttles.login_limits``), so guessing through ``/admin/login/`` spends the
same allowance as guessing through ``/auth/login``."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from core.errors import RateLimitedError
from core.throttles import login_limits


def admin_login(request: HttpRequest, extra_context: dict[str, object] | None = None) -> HttpResponse:
    """Django's admin login; a POST is counted before it is checked and refused 429 (with
    Retry-After) once the limits are spent; one that signs in is forgiven, any other (the form shown
    again) stays a failure."""
    if request.method != "POST":
        return admin.site.login(request, extra_context)
    limits = login_limits(request, email=str(request.POST.get("username", "")))
    try:
        limits.count()  # before the password is checked: parallel guesses past the limit are refused
    except RateLimitedError as exc:
        return HttpResponse(
            f"Too many failed sign-ins. Try again in {exc.wait} seconds.\n",
            status=429,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": str(exc.wait)},
        )
    response = admin.site.login(request, extra_context)
    signed_in = response.status_code in (301, 302, 303) and request.user.is_authenticated
    if signed_in:
        limits.forgive()  # a right password is no failure
    return response


admin_login.access = "public"  # type: ignore[attr-defined]  # the access mark every view carries
