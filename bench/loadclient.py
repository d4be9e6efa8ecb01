"""A small HTTP/1.1 load client for the benchmarks: one connection per simulated rater.

The benchmarks measure a server on a 2-core machine where the client runs beside it, so
every millisecond the client spends is taken from the server. httpx's AsyncClient cost about
2 ms of CPU per request here; this client, which only speaks what the benchmarks need
(GET/POST, JSON bodies, Content-Length or chunked responses, keep-alive when the server
allows it, a reconnect when it closes), costs a tenth of that. Both PrefLoop and the peer
are measured with it, so the comparison stays the same loop on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return jsonlib.loads(self.content)


class Connection:
    """One keep-alive connection to one host; requests on it run one at a time."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", url, headers=headers)

    async def post(self, url: str, headers: dict[str, str] | None = None, json=None) -> Response:
        return await self.request("POST", url, headers=headers, json=json)

    async def request(self, method: str, url: str, headers=None, json=None) -> Response:
        try:
            return await asyncio.wait_for(self._request(method, url, headers, json), self.timeout)
        except BaseException:
            await self.close()  # a half-read response must not be taken for the next one
            raise

    async def _request(self, method: str, url: str, headers, json) -> Response:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = b"" if json is None else jsonlib.dumps(json).encode()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if json is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        for attempt in (1, 2):
            fresh = self._writer is None
            if fresh:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            try:
                self._writer.write(head + body)
                return await self._read_response()
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                # A kept-alive connection the server had already closed: send once more.
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _read_response(self) -> Response:
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._read_chunked()
        elif "content-length" in headers:
            content = await self._reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304):
            content = b""
        else:
            content = await self._reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, content)

    async def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
