"""A run's event stream gzipped for a client that takes gzip (``web/_streams.py``,
"Compression"), over real HTTP with the token: each event arrives whole, as it is sent.

Counts of bytes read off the socket (``aiter_raw``), not times."""

from __future__ import annotations

import asyncio
import json
import zlib
from pathlib import Path

import httpx
import pytest

from browser_support import TOKEN, stored_runs_server
from pipeline_tracking_support import store_stages

pytestmark = pytest.mark.slow

BEARER = {"authorization": f"Bearer {TOKEN}"}


def _store_tree(db: Path, count: int) -> str:
    """A stored run of ``count`` stages, each the child of one stage above it (a binary tree)."""
    names = [f"s{i:03d}" for i in range(count)]
    edges = [(names[(i - 1) // 2], names[i]) for i in range(1, count)]
    return store_stages(db, "tree", names, "boom", step=1_000_000, edges=edges)


async def _read_stream(url: str, encoding: str) -> tuple[httpx.Headers, list[tuple[int, str]]]:
    """The stream's headers and, after each read off the socket, the bytes read so far and
    all the text they decode to (with a gzip decoder fed as they come, when gzipped)."""
    headers = {**BEARER, "accept-encoding": encoding}
    reads: list[tuple[int, str]] = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        unzip = zlib.decompressobj(31) if response.headers.get("content-encoding") else None
        wire, text = 0, b""
        async for raw in response.aiter_raw():
            wire += len(raw)
            text += unzip.decompress(raw) if unzip else raw
            reads.append((wire, text.decode()))
        if unzip is not None:
            assert unzip.eof, "the gzip member was not finished"
    return response.headers, reads


async def test_a_large_runs_stream_comes_gzipped_when_the_client_takes_gzip(
    tmp_path: Path,
) -> None:
    """A stored run of 500 stages: its one state event was about 178 KB on the wire. Asked
    with ``Accept-Encoding: gzip`` the stream says ``Content-Encoding: gzip`` and comes in
    under a twentieth of that, the same text once decoded (a finished gzip member); asked
    with ``identity``, or with ``gzip;q=0``, it is plain."""
    run_id = await asyncio.to_thread(_store_tree, tmp_path / "spans.db", 500)
    async with stored_runs_server(tmp_path / "spans.db") as url:
        stream = f"{url}/api/runs/{run_id}/stream"
        zipped_headers, zipped = await _read_stream(stream, "gzip, deflate")
        plain_headers, plain = await _read_stream(stream, "identity")
        refused_headers, _ = await _read_stream(stream, "gzip;q=0, identity")
    assert "gzip" == zipped_headers.get("content-encoding")
    assert "accept-encoding" == zipped_headers.get("vary")
    assert [None, None] == [
        headers.get("content-encoding") for headers in (plain_headers, refused_headers)
    ]
    events = [
        json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])
        for _, text in (zipped[-1], plain[-1])
    ]
    assert events[0]["nodes"] == events[1]["nodes"], "the same state, decoded"
    assert 500 == len(events[0]["nodes"])
    assert zipped[-1][1].endswith("event: end\ndata: {}\n\n")
    assert zipped[-1][0] * 20 < plain[-1][0], (zipped[-1][0], plain[-1][0])
