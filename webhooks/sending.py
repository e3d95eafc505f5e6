"""One HTTP attempt of a delivery, and nothing of the database.

The URL passes the outbound guard again right before the connection (``core.url_guard``: private,
loopback, link-local and metadata addresses refused; the connection goes only to the addresses just
checked, so a name that rebinds meanwhile changes nothing). Redirects are not followed (a 3xx is a
failed attempt). The whole attempt, the name lookup included, has WEBHOOK_TIMEOUT_SECONDS; of the
answer only its status and the first WEBHOOK_RESPONSE_PREVIEW_BYTES (raw, never decompressed) are read,
for the delivery log."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

import anyio
import httpx2
from django.conf import settings

from core.errors import ServiceUnavailableError
from core.url_guard import PinnedTransport, UrlNotAllowedError, check_url
from webhooks.signing import HEADER

USER_AGENT = "LeanCore-Webhooks/1"
PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt got: the endpoint's status (None: no answer) and, unless delivered, why not."""

    response_status: int | None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


async def _preview(response: httpx2.Response) -> str:
    """The start of the answer's body, as text for the log (at most the preview's bytes are read)."""
    limit = settings.WEBHOOK_RESPONSE_PREVIEW_BYTES
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= limit:
            break
    text = " ".join(read[:limit].decode(errors="replace").split())
    return text[:PREVIEW_CHARS]


async def _post(url: str, *, body: bytes, headers: dict[str, str], org_id: uuid.UUID, seconds: float) -> Outcome:
    addresses = await anyio.to_thread.run_sync(functools.partial(check_url, url, org_id=org_id))
    transport = PinnedTransport(url, addresses) if addresses is not None else httpx2.AsyncHTTPTransport(trust_env=False)
    async with (
        httpx2.AsyncClient(
            transport=transport, timeout=httpx2.Timeout(seconds), follow_redirects=False, trust_env=False
        ) as client,
        client.stream("POST", url, content=body, headers=headers) as response,
    ):
        if 200 <= response.status_code < 300:
            return Outcome(response.status_code)
        preview = await _preview(response)
        return Outcome(response.status_code, f"HTTP {response.status_code}" + (f": {preview}" if preview else ""))


async def post(*, url: str, body: bytes, signature: str, org_id: uuid.UUID) -> Outcome:
    """POSTs ``body`` (JSON) to ``url`` with its signature header; never raises for what the endpoint,
    the network or the guard did: that is the outcome."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, HEADER: signature}
    try:
        with anyio.fail_after(timeout):
            return await _post(url, body=body, headers=headers, org_id=org_id, seconds=timeout)
    except TimeoutError:
        return Outcome(None, f"No answer within {timeout:g} seconds.")
    except UrlNotAllowedError as exc:
        return Outcome(None, f"The URL is not allowed: {exc.detail}")
    except ServiceUnavailableError as exc:  # every name lookup thread is busy: tried again later
        return Outcome(None, str(exc.detail))
    except httpx2.HTTPError as exc:
        return Outcome(None, f"Could not reach the endpoint: {exc.__class__.__name__}: {exc}".rstrip(": ")[:500])
