"""What each operation of organizations, members, invitations and API keys does, for API users (Markdown),
where its view's own ``extend_schema`` says nothing; keyed by the operation's path and method as the
schema names them (``leancore.schema.descriptions``). The schema adds who may call it and every error
status with its codes from the error registry: a description says what happens, not which status or code
answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/auth/accept-invite", "post"): (
        "Redeems the one-time token from an invitation email. Without a bearer token: `{token, password, "
        "name?}` for an address that has no account yet; it sets the password and answers 200 with the same "
        "body as a login. With the invited account's own access token: `{token}`; it answers `{organization, "
        "role}` and changes nothing of the account. An invitation never sets the password of, renames or "
        "re-activates an existing account (the token is refused). A used, expired, revoked or unknown token "
        "is refused; a weak password is a validation error naming `password` and leaves the token usable. "
        "Repeated failures from one client are limited."
    ),
    ("/users/me", "get"): (
        "The caller's account (`id`, `email`, `name`, `isStaff`) and every organization where they are an "
        "active member, with their role there, by organization name. Use an `id` from `organizations` as "
        "`X-Org-Id` on org-scoped calls; not paginated."
    ),
    ("/users", "get"): (
        "Members of the organization with their role and `status` (`active`, or `invited` until the "
        "invitation is accepted), newest first, paginated. Filter by `role` and `status`; `search` looks in "
        "the name and the email. Each member has `monthlyCreditLimit` (their monthly credit cap, null = none)"
        " and `spentThisPeriod` (what their turns cost this calendar month, UTC); per-person spend is private"
        " to the person and the admins, so for a `member` caller another member's `spentThisPeriod` is null."
    ),
    ("/users/{id}", "get"): (
        "One member (`{id}` is the user's id), as in the list: with `monthlyCreditLimit` and "
        "`spentThisPeriod` (null for another member when the caller is a `member`). A user who is not a "
        "member of this organization is not found."
    ),
    ("/users/{id}/quota", "patch"): (
        "Sets the member's monthly credit cap `{monthlyCreditLimit}` (a decimal string, at most 6 decimals, "
        "at least 0; null removes it) and answers 200 with the member. Before each model call of a turn the "
        "member started, their spend this period plus their open holds is checked against it, after the "
        "specialist's limit: once it is reached the call is refused with 402 `budget_exhausted`, `scope: "
        '"member_budget"`, `limit`, `spent` and `resetAt` (the next month). Concurrent turns of one member '
        "exceed the cap by at most the last call's overrun. Needs an admin; an admin may not set their own "
        "cap and only an owner sets an owner's (their own included)."
    ),
    ("/users/{id}", "put"): (
        "Sets the member's `name` (`{id}` is the user's id) and answers 200 with the member. The name belongs"
        " to the person's account, so it changes in every organization they are in. Another member's name "
        "needs an admin; a user who is not a member of this organization is not found."
    ),
    ("/users/{id}", "delete"): (
        "Removes the membership, not the account, and answers 204; for an invited member it revokes the "
        "invitation. Anyone may remove themselves (leave); removing others needs an admin, and removing an "
        "owner needs an owner. The last owner cannot be removed. The removed user's open chat WebSockets of "
        "this organization are closed."
    ),
    ("/users/{id}/role", "patch"): (
        "Sets the member's role (`member`, `admin` or `owner`) and answers 200 with the member. Granting or "
        "taking away `owner` needs an owner; the last owner cannot be demoted. The member's open WebSockets "
        "pick up the new role at once."
    ),
    ("/orgs", "get"): (
        "The organizations the caller is an active member of, newest first, paginated, each with the caller's"
        " `role`. Platform staff see every organization, with `role: null` where they are not a member."
    ),
    ("/orgs/{id}", "get"): (
        "The organization, the caller's `role` in it, its number of active members (`memberCount`) and its "
        "spending settings: `monthlyBudget` and `lowBalanceThreshold` (null when not set)."
    ),
    ("/orgs/{id}", "put"): (
        "Sets the name and, when given, the spending settings: `monthlyBudget` (calls are refused with 402 "
        "`budget_exhausted` once the calendar month's spend plus open holds reaches it) and "
        "`lowBalanceThreshold` (an alert is raised and emailed when the balance falls below it). An omitted "
        "setting keeps its value; null removes it. Answers 200 with the organization."
    ),
    ("/orgs/{id}/billing-email", "patch"): (
        "Sets the address that receives the organization's billing alerts (budget thresholds, low balance, "
        "circuit opened) and answers 200 with the organization."
    ),
    ("/orgs/{orgId}/api-keys", "post"): (
        "Creates an API key of the organization (admin) and answers 201 with it and `key`, the secret "
        "`lc_<prefix>_<secret>`, shown only in this answer: only a hash of the secret is stored. `role` is "
        "`member` (default) or `admin`; anything else is a validation error naming `role`. Creation is in the"
        " organization's audit trail."
    ),
    ("/orgs/{orgId}/api-keys", "get"): (
        "The organization's API keys (admin), newest first, paginated, revoked ones included, never a secret."
        " `revoked=true` lists only revoked keys, `revoked=false` only the others."
    ),
    ("/orgs/{orgId}/api-keys/{id}", "get"): "One API key of the organization (admin), never its secret.",
    ("/orgs/{orgId}/api-keys/{id}", "delete"): (
        "Revokes the key at once and answers 204 (revoking a revoked key changes nothing); the record stays, "
        "with `revokedAt`, for the audit trail and the ledger. Revocation is in the organization's audit "
        "trail."
    ),
}
