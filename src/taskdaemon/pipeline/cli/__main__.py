"""``python -m taskdaemon.pipeline.cli``: the command, its process's end bounded as the
console script's (``cli/process_end.py``)."""

import sys

from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.cli.process_end import watch_end

sys.exit(watch_end(main()))
