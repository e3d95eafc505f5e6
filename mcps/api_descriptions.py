"""What each operation of MCP connections and tools does, for API users (Markdown), where its view's own
``extend_schema`` says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/orgs/{orgId}/mcps", "post"): (
        'Creates a connection in `status: "pending"` and answers 201; it has no tools until a sync. With '
        "`catalogKey` the catalog entry supplies the name, URL, transport and auth type; otherwise `name`, "
        "`url` and `transport` are required. A URL that resolves to a private, loopback, link-local or "
        "metadata address, or does not resolve, is not allowed; `authType` `bearer` needs `token`, `header` "
        "also `headerName` (stored encrypted, never returned). Throttled per organization "
        "(`THROTTLE_MCP_WRITE`, creates and updates together, counted once the caller is known as an admin). "
        "While the org's lookups of host names already hold its share of the lookup threads (a name server "
        "that does not answer), the create is refused as unavailable for now."
    ),
    ("/orgs/{orgId}/mcps/{id}", "put"): (
        "Changes only the fields given and answers 200 with the connection. A new `url` is checked like on "
        "create and sets the status back to `pending`; a URL on another origin (scheme, host or port) drops "
        "the stored credentials unless this request gives a new `token` (`hasCredentials` says which). The "
        "masked URL this API shows (no userinfo, query values `***`) sent back keeps the stored URL. `token` "
        "and `headerName` replace the stored credentials, a new `authType` needs its credentials, and `none` "
        "drops them. `catalogKey` cannot be changed. Throttled with create (`THROTTLE_MCP_WRITE`)."
    ),
    ("/orgs/{orgId}/mcps/{id}", "delete"): (
        "Deletes the connection and its stored tools and answers 204; the tools are taken from every "
        "specialist that had them."
    ),
    ("/orgs/{orgId}/mcps/{id}/sync", "post"): (
        "Connects to the server (initialize, then every page of `tools/list`) and makes the stored tools "
        "match it; answers 200 `{added, updated, removed, tools}`. A tool gone from the server is deleted and"
        " leaves every specialist; on success the connection is `connected` with `lastSyncedAt`. An "
        "unreachable or failing server, one whose responses to the sync (every page together) pass "
        "`MCP_MAX_RESPONSE_BYTES`, or one that lists more than 500 tools, a tool name empty or over 200 "
        "characters, a description over 16 KiB or an input schema over 64 KiB, is refused as unreachable, "
        "saying why: the connection becomes `error` with `lastError`, and the stored tools stay. Throttled "
        "per organization (`THROTTLE_MCP_SYNC`), counted only once the caller is known as an admin and the "
        "connection found."
    ),
    ("/orgs/{orgId}/mcps/{id}/tools", "get"): (
        "The tools stored by the last sync, by name, paginated, each with its `inputSchema` and whether the "
        "organization allows it (`enabled`)."
    ),
    ("/orgs/{orgId}/mcps/{id}/tools/{toolId}", "patch"): (
        "Allows or blocks one tool for the whole organization and answers 200 with it. A blocked tool is "
        "offered to no specialist and cannot be added to one, but specialists keep it in `toolIds`, so "
        "enabling it again gives it back; a tool of another connection is not found."
    ),
}
