"""``python -m oe_async``: the command line (see :mod:`oe_async.cli`)."""

import sys

from oe_async.cli import main

sys.exit(main())
