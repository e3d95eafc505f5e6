"""A webhook endpoint for the tests: a real HTTP server on a thread that records every POST, checks its
signature with the README's own verification snippet (``verify_signature``, below, is that snippet:
``test_the_readme_snippet_is_the_one_the_receiver_runs`` holds them equal), and answers as a test
tells it per path (a status, a delay, a redirect, a body)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.utils import timezone

# --- the README's snippet (verbatim) -----------------------------------------------------------------


def verify_signature(header: str, body: bytes, secret: str, tolerance: int = 300, now: float | None = None) -> bool:
    """Whether a LeanCore-Signature header signs this raw body with this endpoint's secret, and is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit():
        return False
    timestamp = int(fields["t"])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


# --- the server --------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0  # seconds before answering
    location: str = ""  # a redirect's target
    body: bytes = b"ok"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # the signature checked against the path's secret

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # path -> the webhook's secret
    answers: dict[str, list[Answer]] = field(default_factory=dict)  # path -> answers, in turn (the last stays)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.secrets.clear()
            self.answers.clear()
            self.received.clear()

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.path == path]

    def answer(self, path: str) -> Answer:
        with self.lock:
            queue = self.answers.get(path) or [Answer()]
            return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            secret = receiver.secrets.get(self.path, "")
            header = self.headers.get("LeanCore-Signature", "")
            # the tests' clock (``timezone.now``) is the one the signatures are made with
            verified = bool(secret) and verify_signature(header, body, secret, now=timezone.now().timestamp())
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers.items()), body, verified))
            answer = receiver.answer(self.path)
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                if answer.location:
                    self.send_header("Location", answer.location)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class ReceiverServer:
    def __init__(self) -> None:
        self.receiver = Receiver()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.receiver))
        self.server.daemon_threads = True
        self.receiver.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
