"""Inputs that used to hang predict or exhaust its memory: a server that trickles its
answer, files that are not what their names say, a PNG header claiming huge dimensions;
and a TF Serving REST stand-in with fixed scores to send the readable ones to."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


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


@contextlib.contextmanager
def fixed_scores_server() -> Iterator[tuple[str, list[int]]]:
    """A TF Serving REST stand-in that answers every instance with the same ten scores
    (digit 3 most likely); yields its URL and the size of each batch it was sent."""
    batches: list[int] = []
    scores = [0.05] * 10
    scores[3] = 0.55

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            batches.append(len(body["instances"]))
            reply = json.dumps({"predictions": [scores] * len(body["instances"])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/ssgan", batches
    finally:
        server.shutdown()
        server.server_close()


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height 1-bit pixels; its data is a few bytes, so the
    claim costs nothing unless someone decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))  # fmt: skip
    return path


def fifo_and_device_named_png(folder: Path) -> list[Path]:
    """``fifo.png``, a FIFO with no writer (opening it to read waits for one), and
    ``zero.png``, a symlink to /dev/zero (reading it never ends)."""
    fifo, zero = folder / "fifo.png", folder / "zero.png"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    return [fifo, zero]
