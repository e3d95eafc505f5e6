"""What each operation of workspaces and their files does, for API users (Markdown), where its view's own
``extend_schema`` says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/workspaces", "post"): (
        "Creates a workspace and answers 201 with it; the caller, as its creator, may change and delete it "
        "(as may admins). Chats started with its `workspaceId` get its files as context and can save "
        "artifacts in it."
    ),
    ("/workspaces/{id}", "get"): "The workspace with its number of files (`fileCount`) and chats (`threadCount`).",
    ("/workspaces/{id}", "put"): (
        "Changes the `name` and `description` given (omitted ones keep their values) and answers 200. Only "
        "the workspace's creator or an admin may."
    ),
    ("/workspaces/{id}", "delete"): (
        "Deletes the workspace, its files (removed from storage) and its artifacts, and answers 204. Its chat"
        " sessions stay, outside any workspace, and its projects lose their `workspaceId`. Only its creator "
        "or an admin may."
    ),
    ("/workspaces/{id}/files", "get"): (
        "The workspace's files (name, type, size, uploader), newest first, paginated. The content itself is "
        "not served here."
    ),
    ("/workspaces/{id}/files", "post"): (
        "Stores a multipart `file` in the workspace and answers 201; its text is then given as context to the"
        " specialist in every chat of this workspace (`textExtracted` says whether it has any). The same "
        "types, limits, storage quota, extraction bounds and upload throttle as a chat upload."
    ),
    ("/workspaces/{id}/files/{fileId}", "delete"): (
        "Deletes the file and its stored content and answers 204; chats no longer get its text. Its uploader,"
        " the workspace's creator or an admin may."
    ),
}
