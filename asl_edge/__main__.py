"""``python -m asl_edge``: the ``asl-edge`` command without its console script."""

import sys

from asl_edge.cli import main

sys.exit(main())
