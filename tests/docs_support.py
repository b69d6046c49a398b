"""What the whole-repository documentation checks share: the files git knows."""

from __future__ import annotations

import subprocess
from pathlib import Path


def repository_files(root: Path, *patterns: str) -> list[str]:
    """The files git knows under ``root`` (tracked, plus new ones not ignored), as posix paths;
    only those matching one of ``patterns`` (git pathspecs such as ``*.md``) when given."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=root,
        capture_output=True,
        check=True,
    )
    names = {name for name in listed.stdout.decode().split("\0") if name}
    return sorted(name for name in names if (root / name).is_file())
