"""``# taskdaemon: ignore[CODE]`` comments that do not read as one suppress nothing, and a code
spelled otherwise is an error naming the code meant, through the real ``taskdaemon validate
--strict``: a typo in a code must not widen the comment to every code, which let a file pass
``--strict`` with its warning hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

#: A warning (``cuont``) on line 11, the comment after it.
_FILE = """\
name: w
stages:
  - name: build
    command: "echo '{{\\"count\\": 3}}'"
    triggers: [{{manual: {{approval_required: false}}}}]
    outputs:
      count: result.count
  - name: late
    command: "true"
    triggers:
      - on_condition: {{expression: "stages.build.outputs.cuont > 1 && false"}}  {comment}
"""

#: Comments that name no code this warning has: a list not closed, a word that goes on past
#: ``ignore``, another code.
UNREAD = [
    "# taskdaemon: ignore[constant-condition",
    "# taskdaemon: ignored",
    "# taskdaemon: ignore-all",
    "# taskdaemon: ignore[own-status]",
]
#: A code spelled otherwise: an error that names it, with the code meant.
MISSPELT = ["# taskdaemon: ignore[Unknown-Output]", "# taskdaemon: ignore[unknown_output]"]
#: Comments that suppress it.
READ = [
    "# taskdaemon: ignore[unknown-output]",
    "# taskdaemon: ignore[unused-ignore, unknown-output]  # why",
    "# taskdaemon: ignore",
    "#taskdaemon:ignore",
]


@pytest.mark.slow
def test_only_a_comment_that_names_the_code_suppresses_it(tmp_path: Path, home: Path) -> None:
    unread = [
        write(tmp_path / f"unread{n}.yaml", _FILE.format(comment=c)) for n, c in enumerate(UNREAD)
    ]
    misspelt = [
        write(tmp_path / f"misspelt{n}.yaml", _FILE.format(comment=c))
        for n, c in enumerate(MISSPELT)
    ]
    read = [write(tmp_path / f"read{n}.yaml", _FILE.format(comment=c)) for n, c in enumerate(READ)]
    done = taskdaemon(home, "validate", "--strict", *map(str, unread + misspelt + read))
    lines = done.stdout.splitlines()
    warned = [line.partition(":")[0] for line in lines if "[unknown-output]" in line]
    refused = [
        line.partition(":")[0]
        for line in lines
        if "unknown warning code" in line and "(did you mean 'unknown-output'?)" in line
    ]
    passed = [line.split()[1] for line in lines if line.startswith("OK ")]
    assert (2, [*map(str, unread)], [*map(str, misspelt)], [*map(str, read)]) == (
        done.returncode,
        warned,
        refused,
        passed,
    )
