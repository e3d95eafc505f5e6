"""Schemathesis hooks for the fuzz step of ``scripts/test.sh`` (loaded through ``SCHEMATHESIS_HOOKS``).

Every operation runs authenticated as the owner of a fresh organization (registered through the
API once per run) with ``X-Org-Id`` set to it. Every URL the fuzzer puts in a body is rewritten to a
closed loopback port and catalog keys are dropped before the request is sent: the server is never
made to connect off this machine.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any

import requests
import schemathesis

BASE_URL = os.environ["FUZZ_BASE_URL"].rstrip("/")
LOOPBACK_URL = os.environ.get("FUZZ_LOOPBACK_URL", "http://127.0.0.1:9/mcp")
URL_KEYS = {"url", "urlTemplate", "docsUrl"}
_lock = threading.Lock()
_owner: dict[str, str] = {}


def _register() -> dict[str, str]:
    with _lock:
        if not _owner:
            suffix = secrets.token_hex(6)
            response = requests.post(
                f"{BASE_URL}/register",
                json={
                    "organizationName": f"Fuzz {suffix}",
                    "name": "Fuzz Owner",
                    "email": f"fuzz-{suffix}@example.com",
                    "password": f"Fuzz-{suffix}-Passw0rd!",
                },
                timeout=30,
            )
            response.raise_for_status()
            body = response.json()
            _owner.update(token=body["accessToken"], org=body["organization"]["id"])
        return dict(_owner)


@schemathesis.auth(refresh_interval=600)
class OwnerAuth:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> dict[str, str]:
        return _register()

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
