"""The HTTP transport the MCP SDK's client is given: every response body is counted as it streams in,
and one larger than ``MCP_MAX_RESPONSE_BYTES`` fails the call before it can fill the memory (a
hostile or broken server that streams without end). Over SSE one response carries a whole session,
so the cap bounds the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2


class ResponseTooLargeError(httpx2.TransportError):
    """The MCP server's response passed the size cap."""


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, limit: int, request: httpx2.Request) -> None:
        self._stream = stream
        self._limit = limit
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                await self._stream.aclose()
                raise ResponseTooLargeError(
                    f"The MCP server's response is larger than {self._limit} bytes.", request=self._request
                )
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """``inner`` (the pinned transport, or a plain one) with every response body capped at ``limit`` bytes;
    a declared ``Content-Length`` over it fails at once, without reading the body."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            await response.aclose()
            raise ResponseTooLargeError(
                f"The MCP server's response is larger than {self._limit} bytes.", request=request
            )
        if not isinstance(response.stream, httpx2.AsyncByteStream):
            raise TypeError("An async transport's response streams asynchronously.")
        response.stream = _CappedStream(response.stream, self._limit, request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
