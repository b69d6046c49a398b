"""``taskdaemon retention``: delete old runs from the embedded span store, per pipeline.

``--keep`` counts runs; the traces of other services (no run row) go by ``--max-age`` alone
(``SpanStore.apply_retention`` says why), so ``--keep`` alone does not bound the file when they
are written to it, and its help says so.

Exit codes: 0 ok, 1 a store that cannot answer (missing, damaged) or that this user may not
write (one line saying why: a read-only file system, a folder of another user), 2 bad arguments
or a span source that is not the embedded store.
"""

from __future__ import annotations

import argparse
from typing import Any

from taskdaemon.pipeline.cli.options import add_source_option, source_exit_code, whole_number
from taskdaemon.pipeline.cli.refusal import refuse
from taskdaemon.pipeline.durations import parse_age
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import (
    RetentionPolicy,
    SpanStore,
    default_source_url,
    open_source,
)
from taskdaemon.pipeline.tracking.source_urls import store_path
from taskdaemon.pipeline.tracking.store import MAX_KEEP, why_read_only
from taskdaemon.pipeline.wording import counted

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``retention``."""
    ret = subparsers.add_parser(
        "retention",
        help="delete old runs from the embedded span store, per pipeline",
        description="Delete old runs from the embedded span store, per pipeline. Exit codes: "
        "0 ok, 1 a store that cannot answer (missing, damaged), 2 invalid arguments or a span "
        "source that is not the embedded store.",
    )
    ret.add_argument(
        "--max-age",
        metavar="AGE",
        help="delete runs, and other services' traces, that started more than AGE ago, "
        "with its unit (90s, 12h, 30d)",
    )
    ret.add_argument(
        "--keep",
        type=whole_number,
        default=None,
        metavar="N",
        help=f"keep the newest N runs per pipeline (0 to {MAX_KEEP}); other services' "
        "traces are not runs: only --max-age deletes them",
    )
    ret.add_argument(
        "--vacuum",
        action="store_true",
        help="then compact the whole file (VACUUM; writers wait while it runs)",
    )
    add_source_option(ret, forms="sqlite:///PATH")
    ret.set_defaults(func=_retention)


def _retention(args: argparse.Namespace) -> int:
    try:
        max_age = parse_age(args.max_age) if args.max_age else None
    except ValueError as exc:
        return refuse("retention", 2, f"--max-age: {exc}")
    if args.keep is not None and not 0 <= args.keep <= MAX_KEEP:
        return refuse("retention", 2, f"--keep must be 0 to {MAX_KEEP}")
    policy = RetentionPolicy(max_age=max_age, keep=args.keep)
    if not policy.is_active and not args.vacuum:
        return refuse("retention", 2, "nothing to do: give --max-age, --keep and/or --vacuum")
    url = (args.source or default_source_url()).strip()
    if not url.lower().startswith("sqlite://"):  # asked first: other sources take no policy
        return refuse("retention", 2, "retention applies to the embedded sqlite:// store only")
    try:
        source = open_source(url, retention=RetentionPolicy())
    except SpanSourceError as exc:  # the embedded store, damaged or out of reach: say which
        return refuse("retention", source_exit_code(exc), _unwritable(url) or str(exc))
    try:
        if not isinstance(source, SpanStore):
            return refuse("retention", 2, "retention applies to the embedded sqlite:// store only")
        if policy.is_active:  # ``--vacuum`` alone deletes nothing, so says nothing of it
            result = source.apply_retention(policy)
            deleted = counted(result.deleted_runs, "run")
            # Out before the vacuum, which may take minutes or fail: a reader of a pipe sees the
            # deletion done meanwhile, and a vacuum's error (``refuse``) comes after it.
            print(f"deleted {deleted} ({counted(result.deleted_spans, 'span')})", flush=True)
        if args.vacuum and source.missing:  # the home's store, not made yet
            print(f"nothing to vacuum: no span store at {source.path} yet")
        elif args.vacuum:
            before, after = source.vacuum()
            print(f"vacuumed {source.path}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    except SpanSourceError as exc:
        return refuse("retention", source_exit_code(exc), str(exc))
    finally:
        source.close()
    return 0


def _unwritable(url: str) -> str | None:
    """The line for a store file this user may read but not write, whose open failed: what
    retention must do (write) and why it cannot, not the readers' "cannot read this span store
    safely" nor SQLite's "attempt to write a readonly database"; None for any other failure."""
    try:
        path = store_path(url)
    except SpanSourceError:
        return None
    why = why_read_only(path) if path.exists() else None
    return None if why is None else f"{path}: cannot delete runs from this span store: {why}"
