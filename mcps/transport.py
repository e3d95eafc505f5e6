"""The HTTP transport the MCP SDK's client is given: every response body is counted as it streams in,
against one budget per call (a sync or a tool call) shared by all its responses, and once the call
has received more than ``MCP_MAX_RESPONSE_BYTES`` it fails before it can fill the memory (a hostile or
broken server that streams without end, or that answers a hundred pages each just under the cap).
Over SSE one response carries a whole session, so the cap bounds the session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx2


class ResponseTooLargeError(httpx2.TransportError):
    """The MCP server's response passed the size cap."""


class ResponseCap:
    """The cap of one MCP call's responses, all together (``used`` counts every byte received so far),
    which remembers a response it refused: the SDK may report the stream it cut as a mere end of
    stream, and the caller then says what really happened."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.exceeded: ResponseTooLargeError | None = None
        self.on_exceeded: Callable[[], object] | None = None  # e.g. cancel the whole call

    def refuse(self, request: httpx2.Request) -> ResponseTooLargeError:
        self.exceeded = ResponseTooLargeError(
            f"The MCP server's responses are larger than {self.limit} bytes.", request=request
        )
        if self.on_exceeded is not None:
            self.on_exceeded()
        return self.exceeded


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, cap: ResponseCap, request: httpx2.Request) -> None:
        self._stream = stream
        self._cap = cap
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._cap.used += len(chunk)
            if self._cap.used > self._cap.limit:
                await self._stream.aclose()
                raise self._cap.refuse(self._request)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """``inner`` (the pinned transport, or a plain one) with the call's response bodies capped at
    ``cap.limit`` bytes together; a declared ``Content-Length`` over what is left fails at once, without
    reading the body."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, cap: ResponseCap) -> None:
        self._inner = inner
        self._cap = cap

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and self._cap.used + int(declared) > self._cap.limit:
            await response.aclose()
            raise self._cap.refuse(request)
        if not isinstance(response.stream, httpx2.AsyncByteStream):
            raise TypeError("An async transport's response streams asynchronously.")
        response.stream = _CappedStream(response.stream, self._cap, request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
