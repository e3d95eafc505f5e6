"""A real MCP server built with the official SDK (MCPServer), served over streamable HTTP and SSE
on loopback. Its tool list is paginated and can change between syncs; it records the headers
it receives."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ListToolsResult

from tests.fakes.llm_server import ThreadedServer


class TestMCPServer(MCPServer):
    page_size = 2

    def __init__(self) -> None:
        super().__init__(name="test-server")
        self.seen_headers: list[dict[str, str]] = []
        self.list_delay = 0.0
        self.install_default_tools()

    def install_default_tools(self) -> None:
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        def echo(text: str) -> str:
            """Repeat the text."""
            return text

        async def slow(seconds: float = 5.0) -> str:
            """Wait, then answer."""
            await asyncio.sleep(seconds)
            return "finally"

        def explode() -> str:
            """Always fails."""
            raise ValueError("the tool broke")

        for fn in (add, echo, slow, explode):
            self.add_tool(fn)

    async def _handle_list_tools(self, ctx: Any, params: Any) -> ListToolsResult:
        request = getattr(ctx, "request", None)
        if request is not None:
            self.seen_headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.list_delay:
            await asyncio.sleep(self.list_delay)
        tools = await self.list_tools()
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.page_size
        return ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)


class MCPServers:
    """The same server over both transports."""

    def __init__(self) -> None:
        self.server = TestMCPServer()
        # the SDK's own DNS-rebinding guard, with the names the tests connect by (a pinned connection
        # to 127.0.0.1 still says its own name in Host)
        security = TransportSecuritySettings(
            allowed_hosts=["127.0.0.1:*", "localhost:*", "rebind.example:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://rebind.example:*"],
        )
        self.http = ThreadedServer(self.server.streamable_http_app(transport_security=security), lifespan="on")
        self.sse = ThreadedServer(self.server.sse_app(transport_security=security), lifespan="off")

    def __enter__(self) -> MCPServers:
        self.http.__enter__()
        self.sse.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)
        self.sse.__exit__(*exc)

    def url(self, transport: str) -> str:
        if transport == "sse":
            return f"{self.sse.url}/sse"
        return f"{self.http.url}/mcp"


def main() -> None:
    """The same server as its own process (``python -m tests.fakes.mcp_server --port N``), so that a
    test can kill it in the middle of a tool call. Its extra tool ``hang`` writes ``--marker`` once
    it has been called, then never answers."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["streamable_http", "sse"], default="streamable_http")
    parser.add_argument("--marker", required=True)
    args = parser.parse_args()
    server = TestMCPServer()

    async def hang() -> str:
        """Start working and never finish."""
        await anyio.Path(args.marker).write_text("called")
        await asyncio.sleep(3600)
        return "never"

    server.add_tool(hang)
    security = TransportSecuritySettings(allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"])
    if args.transport == "sse":
        app, lifespan = server.sse_app(transport_security=security), "off"
    else:
        app, lifespan = server.streamable_http_app(transport_security=security), "on"
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan=lifespan)


if __name__ == "__main__":
    main()
