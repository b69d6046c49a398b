"""``python -m taskdaemon``: the ``taskdaemon`` command, for a venv whose ``bin`` is not on the
``PATH`` (or a Python chosen by hand); the same as ``python -m taskdaemon.pipeline.cli``."""

import sys

from taskdaemon.pipeline.cli import main

sys.exit(main())
