"""A scalar's place is found in memory bounded by nothing per line or character
(``yaml_places``): a block of 100,000 lines, a double-quoted scalar of as many escapes.

Apart from ``pipeline_yaml_places_test.py``, the script's mutation selection for the module
(``scripts/mutation.sh``): under mutmut's trampolines this test takes about a minute, and every
mutant of the walk runs it, which made a run of the module take hours on a shared machine; the
places themselves are pinned character by character there."""

from __future__ import annotations

import tracemalloc

from taskdaemon.pipeline.yaml_places import scalar_place
from yaml_places_support import scalar_event


def test_a_large_scalar_is_walked_in_bounded_memory() -> None:
    """The walk holds nothing per line or character: the peak is far below the scalar's
    size, for a block of 100,000 lines and a double-quoted scalar of as many escapes."""
    block = "k: |\n" + "  x &&\n" * 100_000 + "  y = 1\n"
    quoted = 'k: "' + "\\t" * 100_000 + '\n  = 1"\n'
    for text, place in ((block, (100_001, 3)), (quoted, (2, 1))):
        event = scalar_event(text, "k")
        tracemalloc.start()
        try:
            found = scalar_place(text, event, *place)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert found is not None
        assert peak < 100_000
