"""How a turn can end without an HTTP answer: its message fails with one of these codes (and its
WebSocket watchers get it in the ``error`` frame). They are in the one registry of codes like every
other; no HTTP response carries them, so no operation of the schema declares them."""

from __future__ import annotations

from core.errors import DomainError


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
