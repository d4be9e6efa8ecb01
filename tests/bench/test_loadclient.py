"""bench/loadclient.py: the benchmarks' HTTP client reads what a real server sends."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadclient import Connection


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a response says close

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"a": ', b"1}"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        self._reply(
            200, {"path": self.path, "port": self.client_address[1]}, close="close" in self.path
        )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(201, {"got": json.loads(body), "auth": self.headers["Authorization"]})

    def _reply(self, status: int, payload: dict, close: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


def run_alone(scenario):
    """Run a coroutine on a fresh event loop in its own thread.

    Playwright's sync API, used by the browser tests in this same process, leaves an
    event loop marked as running on the main thread, where ``asyncio.run`` refuses.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, scenario()).result()


@pytest.fixture
def base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_requests_on_one_connection(base):
    async def scenario():
        connection = Connection(base)
        first = await connection.get(f"{base}/one")
        second = await connection.get(f"{base}/two?x=1")
        posted = await connection.post(
            f"{base}/submit", headers={"Authorization": "Token abc"}, json={"ranking": [[1], [2]]}
        )
        chunked = await connection.get(f"{base}/chunked")
        empty = await connection.get(f"{base}/empty")
        await connection.close()
        return first, second, posted, chunked, empty

    first, second, posted, chunked, empty = run_alone(scenario)
    assert (first.status_code, first.json()["path"]) == (200, "/one")
    assert second.json()["path"] == "/two?x=1"
    assert first.json()["port"] == second.json()["port"]  # kept alive: same client socket
    assert posted.status_code == 201
    assert posted.json() == {"got": {"ranking": [[1], [2]]}, "auth": "Token abc"}
    assert chunked.json() == {"a": 1}
    assert (empty.status_code, empty.content) == (204, b"")


def test_a_closed_connection_is_reopened_for_the_next_request(base):
    async def scenario():
        connection = Connection(base)
        closing = await connection.get(f"{base}/close")
        after = await connection.get(f"{base}/after")
        await connection.close()
        return closing, after

    closing, after = run_alone(scenario)
    assert closing.status_code == after.status_code == 200
    assert closing.json()["port"] != after.json()["port"]  # a new socket after the close
