"""``python -m taskdaemon.pipeline.cli``: the command, its process's end bounded as the
console script's (``cli/process_end.py``)."""

import sys

from taskdaemon.pipeline.adopted_orphans import allow
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.cli.process_end import watch_end

allow()  # taskdaemon's own process adopts its stages' orphans (adopted_orphans)
sys.exit(watch_end(main()))
