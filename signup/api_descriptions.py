"""What each operation of registration does, for API users (Markdown), where its view's own
``extend_schema`` says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/register", "post"): (
        "Creates the account and a new organization with the caller as its `owner`; the organization's "
        "billing email is the account's email and it starts with the sign-up credits (a setting, 100 by "
        "default). Answers 201 with the login body plus `organization`, so the client is signed in at once. "
        "An email that already has an account, or a weak password, is a validation error naming the field; "
        "sign-ups per client are rate-limited."
    ),
}
