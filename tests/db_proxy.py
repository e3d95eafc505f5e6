"""A TCP proxy between a server process and PostgreSQL that a test can cut: every connection through
it is closed at once and new ones are refused (accepted and closed before PostgreSQL's handshake),
as a database that died is seen by its clients; then restored. The shared PostgreSQL server other
tests use is never stopped, only this one road to it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from tests.fakes.llm_server import free_port

CHUNK = 65536


class DatabaseProxy:
    """Listens on 127.0.0.1:``port`` and forwards to ``upstream`` (host, port), on an event loop of
    its own (a thread). ``cut``/``restore`` switch it; it counts what it did, so a test can show the
    fault really happened."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.forwarded = 0  # connections carried to PostgreSQL
        self.cut_connections = 0  # open connections closed by ``cut``
        self.refused = 0  # connections refused while cut
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()  # (client, PostgreSQL)
        self._down = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="db-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.Server = self._call(self._listen())

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.refused += 1
            client_writer.transport.abort()
            return
        try:
            reader, writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self.forwarded += 1
        pair = (client_writer, writer)
        self._open.add(pair)
        try:
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))
        finally:
            self._open.discard(pair)
            for side in pair:
                side.transport.abort()

    async def _cut(self) -> int:
        self._down = True
        pairs = list(self._open)
        self._open.clear()
        for pair in pairs:
            for side in pair:
                side.transport.abort()  # no goodbye: a reset, as from a database that died
        return len(pairs)

    async def _restore(self) -> None:
        self._down = False

    def cut(self) -> None:
        """Every open connection closed (each side reset), new ones refused until ``restore``."""
        self.cut_connections += self._call(self._cut())

    def restore(self) -> None:
        self._call(self._restore())

    def close(self) -> None:
        self.cut()
        self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
