"""A gzip member per event stream whose chunks are compressed once, however many streams send
them.

Each chunk (an event, a ping, the ``retry:`` preamble, ``end``) is compressed by a compressor of
its own, raw deflate flushed with ``Z_SYNC_FLUSH``: blocks that are not the last, ending on a
byte, that refer to nothing before them. Such segments laid one after another are one deflate
stream (pigz builds its parallel output the same way), so every stream sends the very bytes of
a chunk that any other stream sends, and only its gzip header, its trailer (CRC-32 and length
of what it sent) and the final empty block are its own. A stream's CRC-32 is the combination
of its chunks' (zlib's ``crc32_combine``, written here: Python's ``zlib`` does not expose it),
at most 32 integer steps a chunk.

Why not a compressor per stream: each compressed every event itself, so a run's state went
through deflate once a client at every change, on the server's loop (up to the hub's bound of
streams), and each held its own zlib state. Compressing each chunk alone loses the history
between events: a big run's state fills deflate's window with itself and loses nothing, a small
run's stream is a few times bigger, in kilobytes (docs/http-api.md has the figures).
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

__all__ = ["GzipMember", "keep"]

#: zlib's fastest level: a run's state gzips about as small at level 1 as at 6.
_LEVEL: Final = 1
#: A gzip header: deflate, no name, no time, unknown OS.
HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: The last, empty deflate block (fixed Huffman codes).
_LAST_BLOCK: Final = b"\x03\x00"
_POLY: Final = 0xEDB88320


def _multiply(a: int, b: int) -> int:
    """``a`` times ``b`` modulo CRC-32's polynomial (reflected, as zlib's ``multmodp``)."""
    product, bit = 0, 1 << 31
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


#: x to the power 2**k modulo the polynomial, k from 0 to 31 (zlib's ``x2n_table``).
_X2N: Final = [1 << 30]
for _ in range(31):
    _X2N.append(_multiply(_X2N[-1], _X2N[-1]))


def _shift(length: int) -> int:
    """x to the power ``8 * length`` modulo the polynomial: ``length`` zero bytes' effect."""
    power, k = 1 << 31, 3
    while length:
        if length & 1:
            power = _multiply(_X2N[k & 31], power)
        length >>= 1
        k += 1
    return power


class _Segment:
    """One chunk compressed alone: its deflate bytes, its CRC-32 and length, and the step
    that carries a CRC over it."""

    __slots__ = ("crc", "data", "length", "shift")

    def __init__(self, chunk: bytes) -> None:
        zipper = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
        self.data = zipper.compress(chunk) + zipper.flush(zlib.Z_SYNC_FLUSH)
        self.crc = zlib.crc32(chunk)
        self.length = len(chunk)
        self.shift = _shift(self.length)


#: The chunk compressed last and its segment, under ``"last"``: a feed offers one event to all
#: its streams in a row, so each event is compressed once. The chunk is held here, so ``is``
#: is a safe test of it.
_recent: dict[str, tuple[bytes, _Segment]] = {}
#: Chunks every stream sends (the ping), compressed once for all.
_kept: dict[bytes, _Segment] = {}


def _segment(chunk: bytes) -> _Segment:
    if (kept := _kept.get(chunk)) is not None:
        return kept
    last = _recent.get("last")  # read once: a server on another thread may replace it
    if last is not None and last[0] is chunk:
        return last[1]
    segment = _Segment(chunk)
    _recent["last"] = (chunk, segment)
    return segment


def keep(chunk: bytes) -> None:
    """Compress ``chunk`` once for every stream that will send it."""
    _kept[chunk] = _Segment(chunk)


class GzipMember:
    """One stream's gzip member: :meth:`wire` each chunk in the order it goes out, then
    :meth:`finish`."""

    __slots__ = ("_crc", "_length", "_started")

    def __init__(self) -> None:
        self._crc = 0
        self._length = 0
        self._started = False

    def wire(self, chunk: bytes) -> bytes:
        """``chunk``'s bytes on the wire (the header before the first), decodable whole."""
        segment = _segment(chunk)
        self._crc = _multiply(segment.shift, self._crc) ^ segment.crc
        self._length += segment.length
        if self._started:
            return segment.data
        self._started = True
        return HEADER + segment.data

    def finish(self) -> bytes:
        """The member's end: the last block and the trailer."""
        head = b"" if self._started else HEADER
        self._started = True
        return head + _LAST_BLOCK + struct.pack("<II", self._crc, self._length & 0xFFFFFFFF)
