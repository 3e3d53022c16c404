"""Several queued WebSocket frames handed to the transport in one write.

aiohttp writes each frame with its own ``transport.write`` — on uvloop a ``send``
system call per frame when the socket buffer is empty, the main cost of a 1,000-event
catch-up. Server frames are unmasked and this gateway never compresses
(``compress=False`` in the handshake), so a frame is just a 2/4/10-byte header and the
payload (RFC 6455 §5.2): the connection's writer frames a run of queued messages itself
and writes them at once. It does so only while the transport's buffer is small; a client
that does not keep up gets frame-by-frame writes through aiohttp, whose flow control
then waits for the transport to drain (so the outbox limit still finds slow consumers).
"""

from __future__ import annotations

import struct
from collections import deque

BATCH_BYTES = 256 * 1024
"""At most this many payload bytes per batched write, and only while the transport holds
less than this unsent."""

_LEN2 = struct.Struct("!BBH").pack
_LEN8 = struct.Struct("!BBQ").pack


def take_batch(queue: deque[bytes], opcode: int) -> tuple[bytes, int, int]:
    """Pop frames from ``queue`` (at least one, up to ``BATCH_BYTES`` of payload) and frame
    them as one buffer: (bytes to write, frames taken, payload bytes taken)."""
    first = 0x80 | opcode  # FIN + opcode, no RSV bits (no compression)
    parts: list[bytes] = []
    size = count = 0
    while queue and (count == 0 or size + len(queue[0]) <= BATCH_BYTES):
        data = queue.popleft()
        n = len(data)
        if n < 126:
            parts.append(bytes((first, n)))
        elif n < 65536:
            parts.append(_LEN2(first, 126, n))
        else:
            parts.append(_LEN8(first, 127, n))
        parts.append(data)
        size += n
        count += 1
    return b"".join(parts), count, size
