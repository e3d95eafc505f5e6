"""What each operation of specialists does, for API users (Markdown), where its view's own
``extend_schema`` says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/specialists", "post"): (
        "Creates a specialist and answers 201 with it. `model` must name an active model rate and "
        "`maxOutputTokens` may not exceed that model's limit; `toolIds` must be enabled MCP tools of this "
        "organization (else a validation error naming the field); `fallbackModels` (tried in order when "
        "`model` fails before its first output) are at most 3 active models, none repeated and not `model` "
        "itself. Defaults: `temperature` 0.7, `maxOutputTokens` 1024, `status` active, no "
        "`monthlyCreditLimit`, no `fallbackModels`."
    ),
    ("/specialists/{id}", "get"): (
        "The specialist, with `usage`: the credits its work cost and the number of its billed replies in this"
        " calendar month (UTC). A deleted specialist, or one of another organization, is not found."
    ),
    ("/specialists/{id}", "put"): (
        "Changes only the fields given; `toolIds`, when given, replaces the whole list. A new `model` or "
        "`maxOutputTokens` is checked against the active model rates like a create, and so are the "
        "`fallbackModels` when they or `model` change (a turn already accepted keeps what it was accepted "
        "with). Setting `status` to `paused` or `archived` stops new chats with it. Answers 200 with the "
        "specialist."
    ),
    ("/specialists/{id}", "delete"): (
        "Removes the specialist from lists (it is not found any more) and answers 204. Its chat sessions, "
        "messages and ledger entries stay readable, and usage keeps its id."
    ),
}
