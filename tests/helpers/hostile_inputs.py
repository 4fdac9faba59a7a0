"""Inputs that used to hang predict or exhaust its memory: a server that trickles its
answer."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Trickle:
    """What the trickling server saw: when the request had arrived, and when the client
    went away (its next byte could not be sent) or the server gave up."""

    arrived: float = 0.0
    ended: float = 0.0
    client_left: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def trickling_server(
    *, headers_too: bool, interval: float = 0.2, give_up_after: float = 12.0
) -> Iterator[tuple[str, Trickle]]:
    """A TF Serving REST URL on 127.0.0.1 (port 0) whose answer to a predict request never
    completes: a 200 header saying ``Content-Length: 100000`` then one body byte every
    ``interval`` seconds, or (``headers_too``) the header itself a byte at a time. Each
    byte arrives well within any per-read timeout. It stops after ``give_up_after``
    seconds, so a client without a whole-request deadline fails late instead of hanging."""
    seen = Trickle()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.arrived = time.monotonic()
            try:
                if headers_too:  # one header line that never ends
                    self._trickle(b"HTTP/1.1 200 OK\r\nX-Trickle: " + b"." * 100000)
                else:
                    self.wfile.write(head)
                    self.wfile.flush()
                    self._trickle(b"[" * 100000)
            finally:
                seen.ended = time.monotonic()
                seen.done.set()
                self.close_connection = True

        def _trickle(self, data: bytes) -> None:
            for byte in data:
                if time.monotonic() - seen.arrived > give_up_after:
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:  # the client closed its end
                    seen.client_left = True
                    return
                time.sleep(interval)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/ssgan", seen
    finally:
        server.shutdown()
        server.server_close()
