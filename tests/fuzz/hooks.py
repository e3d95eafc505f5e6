"""Schemathesis hooks for the fuzz step of ``scripts/test.sh`` (loaded through ``SCHEMATHESIS_HOOKS``).

Every operation runs authenticated as the staff owner of a fresh organization (made by
``tests/fuzz/run.py``) with ``X-Org-Id`` set to it. Every URL the fuzzer puts in a body is rewritten to a
closed loopback port and catalog keys are dropped before the request is sent: the server is never
made to connect off this machine.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

LOOPBACK_URL = os.environ.get("FUZZ_LOOPBACK_URL", "http://127.0.0.1:9/mcp")
URL_KEYS = {"url", "urlTemplate", "docsUrl"}
IDENTITY = {"token": os.environ["FUZZ_TOKEN"], "org": os.environ["FUZZ_ORG"]}


@schemathesis.auth(refresh_interval=None)
class OwnerAuth:
    """The staff owner of a fresh organization (made by ``tests/fuzz/run.py``), acting in it."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> dict[str, str]:
        return IDENTITY

    def set(self, case: schemathesis.Case, data: dict[str, str], ctx: schemathesis.AuthContext) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data['token']}"
        case.headers["X-Org-Id"] = data["org"]


def _confined(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: LOOPBACK_URL if key in URL_KEYS else _confined(item)
            for key, item in value.items()
            if key != "catalogKey"
        }
    if isinstance(value, list):
        return [_confined(item) for item in value]
    return value


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, **kwargs: Any) -> None:
    """Runs for every request of every phase, right before it is sent."""
    if isinstance(case.body, dict | list):
        case.body = _confined(case.body)
