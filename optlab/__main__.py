"""``python -m optlab`` is the ``optlab`` command."""

import sys

from optlab.cli import main

sys.exit(main())
