"""Access tokens this process has validated, so that a caller's next request skips decoding and
verifying the same token again.

A token is kept by its exact bytes (signature included: any other token, a forged one too, is
never found here) with the ``exp`` claim it was verified with, and is found only until then: past
its expiry it is dropped and checked in full again, which refuses it exactly as the first check
would. Only tokens that passed the full check are kept (an invalid token is verified in full every
time), at most ``VALIDATED_TOKENS`` of them, the least recently used dropped first. Nothing about
the caller is kept: their user and membership are read on every request. A check later added to
access tokens themselves (a blacklist of access tokens, a leeway past ``exp``) must be made here too:
a kept token is not checked again until its ``exp``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from rest_framework_simplejwt.tokens import Token

VALIDATED_TOKENS = 4096  # per process: recent callers' tokens (an access token is a few hundred bytes)


class ValidatedTokens:
    def __init__(self, size: int = VALIDATED_TOKENS) -> None:
        self._size = size
        self._tokens: OrderedDict[bytes, tuple[float, Token]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, raw: bytes) -> Token | None:
        """The token validated from ``raw`` earlier, while its ``exp`` is still ahead (None: check it)."""
        with self._lock:
            found = self._tokens.get(raw)
            if found is None:
                return None
            expires_at, token = found
            if time.time() >= expires_at:
                del self._tokens[raw]
                return None
            self._tokens.move_to_end(raw)
            return token

    def keep(self, raw: bytes, token: Token) -> None:
        """``token`` has just been validated from ``raw``: kept until its ``exp`` (a token without
        one is not kept)."""
        expires_at = token.payload.get("exp")
        if not isinstance(expires_at, int | float):
            return
        with self._lock:
            self._tokens[raw] = (float(expires_at), token)
            self._tokens.move_to_end(raw)
            while len(self._tokens) > self._size:
                self._tokens.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
