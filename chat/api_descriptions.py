"""What each operation of chat does, for API users (Markdown), where its view's own ``extend_schema`` says
nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/api/chat/stream", "post"): (
        "Sends `message` to the specialist and streams the answer as Server-Sent Events; without `sessionId` "
        "a new session starts (`workspaceId` gives it the workspace's files as context, `attachmentIds` "
        "attach uploads). Credits are held for the call's worst case before it starts and settled to the real"
        " usage at the end; refusals (credits, budgets, the circuit, an inactive specialist, a bad body, "
        "throttles) arrive as problem+json before any event. A model call that fails before its first output "
        "is retried once, then the specialist's `fallbackModels` are tried (a `fallback` event each); when "
        "every model failed before the stream started, the answer is problem+json, not a stream. If the "
        "client disconnects, the model call is cancelled, what was produced is billed once and the message "
        'ends `failed` (`onDisconnect: "cancel"`, the default); with `onDisconnect: "continue"` the turn runs'
        " to its end without the client and is billed in full. Every event of the turn is kept for "
        "`STREAM_REPLAY_SECONDS` after it ends: resume with `GET /api/chat/messages/{messageId}/events` and "
        "`Last-Event-ID`. With an `Idempotency-Key` (kept 24 h) a repeat of the same body answers 200 JSON "
        "`{sessionId, messageId, status}` instead of a second turn."
    ),
    ("/api/chat/async", "post"): (
        "Takes the same body as the stream, holds the credits for the turn's worst case and answers 202 "
        '`{sessionId, messageId, status: "queued"}`; a worker then runs the turn and the assistant message '
        "moves queued → running → completed or failed. Refusals for credits and budgets happen here, before "
        "anything is queued. Follow it on the WebSocket `/ws/chat/sessions/{sessionId}/` (a `resume` frame "
        "with the `messageId` misses nothing), with `GET /api/chat/messages/{messageId}/events`, or by polling "
        "`GET /api/chat/sessions/{id}`; with an `Idempotency-Key` a repeat returns the first answer with the "
        "message's current `status`."
    ),
    ("/api/chat/sessions/{id}", "get"): (
        "The session with all its messages in order, each with its `status`, `error`, tool calls, attachments"
        " and `usage` (tokens and credits). A member reads only sessions they started; another member's "
        "session, or one of another organization, is not found."
    ),
    ("/api/chat/sessions/{id}", "delete"): (
        "Deletes the session and its messages and answers 204; the ledger keeps its usage entries and "
        "uploaded attachments stay stored. Its creator or an admin may delete it; a session the caller cannot"
        " read (a member reads only the sessions they started) is not found. A session with a turn still "
        "running cannot be deleted (delete it once the turn has ended); a turn still queued in it is failed "
        "first, its hold given back."
    ),
    ("/api/chat/upload", "post"): (
        "Stores a multipart `file` and answers 201 `{id, filename, contentType, size, createdAt, "
        "textExtracted}`; pass the `id` in a send's `attachmentIds`. Allowed: plain text, Markdown, CSV, "
        "JSON, PDF, PNG and JPEG; the text of text files and PDFs is extracted for the specialist, within "
        "`UPLOAD_EXTRACT_SECONDS` and `UPLOAD_EXTRACT_MAX_CHARS`; images, and files whose text cannot be "
        "extracted within those bounds, are stored without text (`textExtracted: false`). A file over the "
        "upload size limit is refused stating that limit (also when the body is over the server's request "
        "limit), and so is one over the organization's storage quota; `sessionId` must be a session the "
        "caller may read."
    ),
    ("/workspaces/{id}/threads", "get"): (
        "The workspace's chat sessions, newest first, paginated: a member sees the ones they started, admins "
        "all of them."
    ),
    ("/workspaces/{id}/artifacts", "get"): (
        "The documents specialists saved in this workspace during its chats (with the `save_artifact` tool), "
        "newest first, paginated, each with its content and the session and specialist that made it."
    ),
}
