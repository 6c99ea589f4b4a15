"""Split ExaBGP's API output into lines, with a bound on the memory one line may take.

asyncio's `readline()` stops at 64 KiB and then leaves the stream unusable; one UPDATE packed in an Extended Message
(RFC 8654, up to 65,535 bytes) is up to ~2 MB of ExaBGP JSON (65,000 one-byte NLRI at ~26 characters each). Lines
up to `LINE_LIMIT` are returned whole; a longer one is not kept: its first `HEAD` bytes and its size come back as an
`Oversized`, and the next line is read as usual (resynchronised on the newline). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# 4x the largest line a 65,535-byte UPDATE can give; beyond it a line is surely not one ExaBGP meant to write whole.
LINE_LIMIT = 8 * 1024 * 1024
# Enough of a line's start to hold its type, direction and peer address (ExaBGP writes them first).
HEAD = 4096


@dataclass(frozen=True, slots=True)
class Oversized:
    head: bytes
    size: int  # bytes in the line, newline excluded


class LineSplitter:
    def __init__(self, limit: int = LINE_LIMIT, head: int = HEAD) -> None:
        self._limit = limit
        self._head_size = head
        self._parts: list[bytes] = []  # the unfinished line, while it is within the limit
        self._size = 0  # bytes of the unfinished line so far
        self._head: bytes | None = None  # set while an oversized line is being skipped

    def feed(self, chunk: bytes) -> list[bytes | Oversized]:
        out: list[bytes | Oversized] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end]
            start = end + 1
            size = self._size + len(piece)
            if self._head is not None:
                out.append(Oversized(self._head, size))
            elif size > self._limit:
                out.append(Oversized(b"".join((*self._parts, piece))[: self._head_size], size))
            else:
                out.append(b"".join((*self._parts, piece)) if self._parts else piece)
            self._parts, self._size, self._head = [], 0, None
        rest = chunk[start:]
        if rest:
            self._size += len(rest)
            if self._head is None:
                self._parts.append(rest)
                if self._size > self._limit:
                    self._head = b"".join(self._parts)[: self._head_size]
                    self._parts = []
        return out

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held (an oversized line being skipped holds only its head)."""
        return sum(map(len, self._parts))
