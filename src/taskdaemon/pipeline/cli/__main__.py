"""``python -m taskdaemon.pipeline.cli``."""

import sys

from taskdaemon.pipeline.cli import main

sys.exit(main())
