"""What each operation of sign-in, tokens and passwords does, for API users (Markdown), where its view's
own ``extend_schema`` says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/auth/refresh", "post"): (
        "Returns a new access token and a new refresh token; the refresh token sent is revoked, so a second "
        "use of it is refused. Store the new refresh token before the next call."
    ),
    ("/auth/verify", "get"): (
        "Answers `{valid: true, userId, expiresAt}` for a valid bearer access token; a missing, expired, "
        "forged or otherwise invalid one is refused."
    ),
    ("/auth/logout", "post"): (
        "Revokes the given refresh token (it must be one of the caller's own; otherwise, or when it is "
        "invalid or expired, a validation error naming `refreshToken`) and answers 204; `{all: true}` revokes"
        " every refresh token of the caller. Access tokens are not revoked: they stay valid until they "
        "expire, so a client should drop them too."
    ),
    ("/auth/password-reset", "post"): (
        "Answers 202 whether or not the email belongs to an account, so it reveals nothing. For an active "
        "account an email is sent with a one-time token (a `Token: …` line and a link with `?token=`) that "
        "expires after 2 hours; asking again revokes the earlier token. Every request counts towards a limit "
        "per email and per client."
    ),
    ("/auth/password-reset/confirm", "post"): (
        "Sets a new password with the token from a reset email and answers 204; the token works once. Every "
        "refresh token of the account stops working, so other sessions must log in again. A used, expired or "
        "unknown token is refused; a weak password is a validation error naming `password` and leaves the "
        "token usable. Wrong tokens from one client are limited as login failures are."
    ),
    ("/users/me/password", "post"): (
        "Changes the caller's password and answers 204. A wrong current password is a validation error naming"
        " `currentPassword`; a weak new one names `newPassword`. Every refresh token of the caller stops "
        "working (access tokens already issued stay valid until they expire). Wrong current passwords are "
        "limited as login failures are, per user and per client; over the limit, even the right one is "
        "refused."
    ),
}
