"""Who may call an operation, in words (the description's last line); each refusal it names is written
from the error registry (its status and code), never by hand."""

from __future__ import annotations

from rest_framework.views import APIView

from core import errors as e
from orgs.context import NotAMemberError, OrgRequiredError

ACCESS = "**Access:**"
ROLE_WORDS = {"member": "any member", "admin": "an admin or owner", "owner": "an owner"}


def refusal(error: type[e.DomainError]) -> str:
    """A refusal as the descriptions write it: its status and code (``403 `permission_denied```)."""
    return f"{error.status} `{error.code}`"


def who_may_call(view: APIView, method: str) -> str:
    """The operation's access, in words: who may call it and in which organization."""
    denied = refusal(e.PermissionDeniedError)
    access = getattr(view, "access", None)
    if access == "public":
        return f"{ACCESS} no authentication."
    if access == "user":
        if getattr(view, "allows_api_keys", False):
            return f"{ACCESS} a bearer access token or an org API key; no organization needed."
        return f"{ACCESS} a bearer access token (an org API key → {denied}); no organization needed."
    action = getattr(view, "action", None) or method.lower()
    role = getattr(view, "required_roles", {}).get(action, "member")
    if getattr(view, "org_path_kwarg", None):
        where = f"the organization in the path (not a member → {e.NotFoundError.status})"
    else:
        where = (
            "the organization named by `X-Org-Id`, or the caller's only organization "
            f"(several and no header → {refusal(OrgRequiredError)}; not a member → {refusal(NotAMemberError)})"
        )
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        staff = "platform staff in any"
    elif action in getattr(view, "operator_writes", ()):
        staff = "platform staff in any (with the permission this operation names)"
    else:
        staff = f"platform staff only where they are members, by their role (elsewhere {denied})"
    keys = (
        f"an org API key → {denied}"
        if "*" in getattr(view, "people_only", ()) or action in getattr(view, "people_only", ())
        else "or an org API key of that role (its org is its own; `X-Org-Id` may be omitted)"
    )
    return f"{ACCESS} a bearer access token of {ROLE_WORDS.get(role, role)} of {where} ({keys}); {staff}."
