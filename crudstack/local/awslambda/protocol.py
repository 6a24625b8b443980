"""The pipes between the runtime and a worker process: length-prefixed frames.

Every message is one frame::

    4 bytes  meta length  (big-endian)
    4 bytes  body length  (big-endian)
    meta     UTF-8 JSON object, always with "op"
    body     raw bytes (a zip, an event or a result; often empty)

runtime -> worker
    init     meta: handler, env, function {name, version, memory_size, log_group, log_stream}
             body: the deployment package (zip), exactly as uploaded
    invoke   meta: id, deadline (epoch ms), arn, client_context, identity
             body: the event, JSON

worker -> runtime
    ready       meta: pid, preloaded (top-level modules imported before the handler)
    log         meta: ts (epoch ms), whole (one log event even if it spans lines)
                body: text the handler printed or logged
    init_done   meta: ms (init duration), rss_kb
    init_error  meta: ms, rss_kb; body: the Lambda error object
    result      meta: ok, ms (handler duration), rss_kb
                body: the handler's return value as JSON, or the Lambda error object

The worker imports this module: standard library only, it is on the cold-start path.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time

HEADER = struct.Struct(">II")
# Larger than any zip or payload Lambda accepts; a frame header claiming more is garbage.
MAX_FRAME = 512 * 1024 * 1024


# ---------------------------------------------------------------------------
# Framing, shared with the runtime side.


def encode_frame(meta: dict, body: bytes = b"") -> bytes:
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(len(meta_bytes), len(body)) + meta_bytes + body


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FrameReader:
    """Reads frames from a pipe. `read` returns None at end-of-file and raises
    TimeoutError when the deadline (a time.monotonic() value) passes first."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = bytearray()
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def read(self, deadline: float | None = None) -> tuple[dict, bytes] | None:
        buffer = self._buffer
        while True:
            wanted = HEADER.size
            if len(buffer) >= HEADER.size:
                meta_len, body_len = HEADER.unpack_from(buffer)
                wanted = HEADER.size + meta_len + body_len
                if wanted > MAX_FRAME:
                    raise ValueError(f"frame of {wanted} bytes: the pipe is out of step")
                if len(buffer) >= wanted:
                    meta = json.loads(bytes(buffer[HEADER.size : HEADER.size + meta_len]))
                    body = bytes(buffer[HEADER.size + meta_len : wanted])
                    del buffer[:wanted]
                    return meta, body
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._poller.poll(math.ceil(remaining * 1000)):
                    raise TimeoutError
            chunk = os.read(self.fd, max(65536, wanted - len(buffer)))
            if not chunk:
                return None
            buffer += chunk
