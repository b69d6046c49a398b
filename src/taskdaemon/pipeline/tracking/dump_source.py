"""``dump:///PATH.tar.gz``: a debug dump (``dump.py``) read as a span source.

Reading is bounded, because a dump may come from anyone: at most ``MAX_MEMBERS`` members, each
a regular file with a plain name (no directory part, no ``..``, no links: nothing is ever
extracted to disk), each at most ``MAX_MEMBER_BYTES`` (the members read, ``manifest.json`` and
``spans.otlp.json``, and those skipped alike) and all together at most ``MAX_DUMP_BYTES``, and
the spans' sha256 must match the manifest. Sizes are checked from each member's header, before
its data is inflated: skipping a member of a gzip stream inflates it, and a gzip bomb shrinks a
thousandfold. ``manifest.json`` is at most ``MAX_MANIFEST_BYTES``. Only the headers ``dump.py``
writes are taken, a member's own (ustar): ``tarfile`` reads a long name's, a PAX header's or a
sparse file's data whole, or a sparse map to the archive's end, before it yields the member whose
size is checked here, and follows a chain of them by recursion (``_DumpHeader``). Decided so
rather than bounding them: no dump holds one, and a dump re-packed by a tool that adds them is
refused in one line, not misread. A document is decoded by
``bounded.loads_bounded``, so only if it is not denser in values than ``bounded`` allows:
documents of nothing but ``[]`` or ``0.5`` decoded to 24 and 12 times their size (a 117 KB dump
took 3 GB, another 1.4 GB). Anything else, a corrupt or foreign archive included, is one
``SpanSourceError`` line naming the file.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from pathlib import Path
from typing import Any, Final, Self

from taskdaemon.pipeline.bounded import BoundedInputError, TooDenseError, loads_bounded
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.tracking.otlp_json import parse_traces
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run
from taskdaemon.pipeline.tracking.run_filter import filter_summaries, group_by_trace
from taskdaemon.pipeline.tracking.spans import SpanRecord

__all__ = [
    "MAX_DUMP_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "DumpSource",
    "decode_member",
    "read_dump_members",
]

MAX_MEMBERS: Final = 64
MAX_MEMBER_BYTES: Final = 128 * 1024 * 1024
#: The manifest names a run and its members' sizes and hashes: a few kilobytes.
MAX_MANIFEST_BYTES: Final = 1024 * 1024
#: What all members may add up to: the members a dump holds beside the two larger ones (the
#: logs, the run record, the DAG) are seldom larger than those.
MAX_DUMP_BYTES: Final = 4 * MAX_MEMBER_BYTES
_FORMAT: Final = "taskdaemon-dump"
#: The header kinds whose data ``tarfile`` reads before the member they describe: GNU long
#: names and links, PAX headers (a member's, a global one, Solaris'), GNU sparse files.
_EXTENDED: Final = {
    tarfile.GNUTYPE_LONGNAME: "a GNU long name header",
    tarfile.GNUTYPE_LONGLINK: "a GNU long link header",
    tarfile.XHDTYPE: "a PAX header",
    tarfile.XGLTYPE: "a global PAX header",
    tarfile.SOLARIS_XHDTYPE: "a Solaris extended header",
    tarfile.GNUTYPE_SPARSE: "a GNU sparse file's header",
}
_WANTED: Final = ("manifest.json", "spans.otlp.json")


class _DumpHeader(tarfile.TarInfo):
    """A header of a dump's archive, refused from its first block when it is one of
    ``_EXTENDED``, before ``tarfile`` reads its data: a long name a gzip bomb inflated was
    held whole in memory before any member was seen, a chain of long names was a
    ``RecursionError`` traceback, and a PAX header's sparse map was read to the archive's
    end, which a gzip bomb put as far as it liked."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        header = super().frombuf(buf, encoding, errors)
        kind = _EXTENDED.get(header.type)
        if kind is not None:
            raise tarfile.ReadError(f"{kind}, which no dump has")
        return header


def read_dump_members(path: Path, wanted: tuple[str, ...] = _WANTED) -> dict[str, bytes]:
    """The ``wanted`` members of the archive at ``path`` (bounded, see the module docstring);
    SpanSourceError (one line) when it is not a readable taskdaemon dump."""
    found: dict[str, bytes] = {}
    total = 0
    try:
        # Opening a fifo waits for a writer. In the ``try``: Python 3.11's ``exists`` raises
        # the OSError of a name too long (a traceback of every command given such a dump).
        if path.exists() and not path.is_file():
            raise SpanSourceError(f"{path}: not a regular file")
        with tarfile.open(path, mode="r:gz", tarinfo=_DumpHeader) as archive:
            for count, member in enumerate(archive, 1):
                if count > MAX_MEMBERS:
                    raise SpanSourceError(f"{path}: more than {MAX_MEMBERS} members: not a dump")
                name = member.name
                if not member.isreg() or "/" in name or "\\" in name or name in ("", ".", ".."):
                    raise SpanSourceError(f"{path}: unexpected member {name!r}: not a dump")
                limit = MAX_MANIFEST_BYTES if name == "manifest.json" else MAX_MEMBER_BYTES
                if member.size > limit:
                    raise SpanSourceError(f"{path}: {name} is larger than the dump limit")
                total += member.size
                if total > MAX_DUMP_BYTES:
                    raise SpanSourceError(
                        f"{path}: members larger than a dump ({MAX_DUMP_BYTES} bytes): not a dump"
                    )
                if name not in wanted:
                    continue
                stream = archive.extractfile(member)
                if stream is None:
                    raise SpanSourceError(f"{path}: cannot read {name}")
                found[name] = stream.read(MAX_MEMBER_BYTES + 1)
    except FileNotFoundError:
        raise SpanSourceError(f"{path}: no such file") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpanSourceError(f"{path}: not a readable debug dump ({reason})") from None
    if "manifest.json" not in found:
        raise SpanSourceError(f"{path}: not a taskdaemon debug dump (no manifest.json)")
    return found


def decode_member(path: Path, name: str, data: bytes) -> Any:
    """The JSON document ``data`` of member ``name`` (``bounded.loads_bounded``: not denser
    in values, nor deeper, than it allows); SpanSourceError otherwise."""
    try:
        return loads_bounded(data)
    except TooDenseError as exc:
        raise SpanSourceError(f"{path}: {name} {exc}: not a dump") from None
    except BoundedInputError:  # not UTF-8, not JSON, or nested deeper than a dump's spans
        raise SpanSourceError(f"{path}: {name} is not JSON") from None


def _manifest(path: Path, data: bytes) -> dict[str, Any]:
    manifest = decode_member(path, "manifest.json", data)
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise SpanSourceError(f"{path}: not a taskdaemon debug dump (foreign manifest)")
    if manifest.get("version") != 1:
        raise SpanSourceError(f"{path}: dump version {manifest.get('version')!r} is not 1")
    return manifest


class DumpSource:
    """The spans of one debug dump; read once, when opened."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        members = read_dump_members(self.path)
        self.manifest = _manifest(self.path, members["manifest.json"])
        spans = members.get("spans.otlp.json")
        if spans is None:
            raise SpanSourceError(f"{self.path}: the dump has no spans.otlp.json")
        files = self.manifest.get("files")
        entry = files.get("spans.otlp.json") if isinstance(files, dict) else None
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if hashlib.sha256(spans).hexdigest() != expected:
            raise SpanSourceError(f"{self.path}: spans.otlp.json does not match its sha256")
        body = decode_member(self.path, "spans.otlp.json", spans)
        self._spans: list[SpanRecord] = parse_traces(body, where=str(self.path))
        if not self._spans:
            raise SpanSourceError(f"{self.path}: the dump holds no spans")

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """The run's spans (the dump's run, by its id or a prefix of it)."""
        wanted = run_id.strip().lower()
        ids = {s.trace_id for s in self._spans}
        matches = [i for i in ids if i.startswith(wanted)] if wanted else []
        if len(matches) != 1:
            raise RunNotFoundError(f"no run {run_id!r} in {self.path}")
        return [s for s in self._spans if s.trace_id == matches[0]]

    def _interrupted(self) -> tuple[str, ...]:
        """The dumped run's id when the dump recorded it ``interrupted`` (dumped from the
        store after its process was killed): its spans alone would read ``running``."""
        run_id = self.manifest.get("run_id")
        if self.manifest.get("status") == "interrupted" and isinstance(run_id, str):
            return (run_id,)
        return ()

    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from the dump's spans."""
        spans = self.get_trace(run_id)
        return reconstruct_run(spans, interrupted=spans[0].trace_id in self._interrupted())

    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunSummary]:
        """The dump's runs that pass the filters, newest first."""
        return filter_summaries(
            group_by_trace(self._spans),
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            limit=limit,
            interrupted=self._interrupted(),
        )

    def close(self) -> None:
        """Nothing to release (read when opened)."""
