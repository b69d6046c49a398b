"""A dump's tar headers that ``tarfile`` reads whole before any member: refused in one line.

A dump given as a span source (``dump:///PATH``) may come from anyone. ``tarfile`` reads a GNU
long name's data, and a PAX header's, whole before it yields the member they describe, and a
PAX header's sparse map up to the archive's end: sizes the reader checks from a member's own
header came too late for them, and a gzip bomb made them as large as it liked. Each archive
here is a few hundred kilobytes, read by ``runs list`` in a real subprocess whose peak memory is
measured (``reliability_support.with_peak``).
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from reliability_support import with_peak

pytestmark = pytest.mark.slow

#: What the extended data inflates to: far more memory than reading a dump ever needs.
INFLATED = 256 * 1024 * 1024

#: Peak memory (MiB) a refusal must stay under: the CLI's own start-up is a fraction of it.
PEAK_MIB = 128


def _gzipped(path: Path, parts: Iterable[bytes]) -> Path:
    """``parts`` written one after another as one gzip stream (level 1: fast to write)."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        for part in parts:
            out.write(part)
    return path


def _long_name(size: int) -> bytes:
    """A GNU long name header whose data is ``size`` bytes."""
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def _repeated(block: bytes, size: int) -> Iterable[bytes]:
    """``size`` bytes of ``block`` repeated (``size`` a multiple of its length), a MiB at a
    time."""
    chunk = block * (1024 * 1024 // len(block))
    for _ in range(size // len(chunk)):
        yield chunk


def _big_long_name(path: Path) -> Path:
    """A long name of ``INFLATED`` zero bytes, then the archive's end."""
    return _gzipped(path, [_long_name(INFLATED), *_repeated(b"\0", INFLATED), b"\0" * 1024])


def _chain_of_long_names(path: Path) -> Path:
    """5,000 long names of 512 bytes in a row, each naming the next header."""
    return _gzipped(path, [(_long_name(512) + b"x" * 511 + b"\0") * 5000, b"\0" * 1024])


def _endless_sparse_map(path: Path) -> Path:
    """A PAX header making its member a GNU 1.0 sparse file whose map, in the member's data,
    claims 10**12 entries and lists ``INFLATED`` bytes of them."""
    member = tarfile.TarInfo("spans.otlp.json")
    member.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    header = member.tobuf(tarfile.PAX_FORMAT)
    return _gzipped(path, [header, b"1000000000000\n", *_repeated(b"1\n", INFLATED)])


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_big_long_name, "a GNU long name header"),
        (_chain_of_long_names, "a GNU long name header"),
        (_endless_sparse_map, "a PAX header"),
    ],
    ids=["long name of 256 MiB", "5000 long names", "sparse map of 256 MiB"],
)
def test_a_header_read_whole_before_its_member_is_refused_in_one_line(
    home: Path, tmp_path: Path, make: Callable[[Path], Path], kind: str
) -> None:
    """``runs list`` refuses the archive in one line naming the header, exit 1, within its
    start-up's memory and seconds. Before, the long name took 256 MiB more (a 500 KB file,
    512 MiB and 4.5 s), the chain was a ``RecursionError`` traceback, and the sparse map
    was read for minutes, growing."""
    archive = make(tmp_path / "hostile.tar.gz")
    done, peak = with_peak(home, "runs", "list", "--source", f"dump://{archive}", timeout=30)
    lines = done.stderr.splitlines()
    assert (1, 1, True, "") == (
        done.returncode,
        len(lines),
        f"not a readable debug dump ({kind}, which no dump has)" in done.stderr,
        done.stdout,
    ), done.stderr[-2000:]
    assert peak < PEAK_MIB, peak
