"""How a turn can end without an HTTP answer: its message fails with one of these codes (and its
WebSocket watchers get it in the ``error`` frame). They are in the one registry of codes like every
other; no HTTP response carries them, so no operation of the schema declares them. Then the errors of
reading a turn's kept events again (``GET /api/chat/messages/{id}/events``), which the schema lists."""

from __future__ import annotations

from core.errors import DomainError, ServiceUnavailableError


class WorkerLostError(DomainError):
    """The process running the turn stopped (its lease ran out): nothing more is billed."""

    status = 503
    code = "worker_lost"
    default_detail = "The process running this turn stopped. Nothing more was billed; please send it again."


class ClientDisconnectedError(DomainError):
    """The client of a stream went away: the call is cancelled and what it produced is billed once."""

    status = 499  # the client closed the request; it reads no answer
    code = "client_disconnected"
    default_detail = "The client went away; the turn was stopped."


class QueueTimeoutError(DomainError):
    """A queued turn no worker started within TURN_QUEUE_TIMEOUT seconds: it never runs, costs nothing."""

    status = 503
    code = "queue_timeout"
    default_detail = "No worker started this turn in time. Nothing was billed; please send it again."


class EventsExpiredError(DomainError):
    """A turn's events are no longer kept: it ended more than STREAM_REPLAY_SECONDS ago (or the
    events asked for were past the per-turn cap). The session's messages still hold its result."""

    status = 410
    code = "events_expired"
    default_detail = (
        "The events of this turn are no longer kept (they are kept for STREAM_REPLAY_SECONDS after it ends); "
        "the session's messages hold its result."
    )


class ReplayUnavailableError(ServiceUnavailableError):
    """The replay log (Redis) cannot be read, or what it kept of a turn is incomplete: no history is
    answered rather than a wrong one."""

    default_detail = "The kept events of this turn cannot be read right now. Try again shortly."
