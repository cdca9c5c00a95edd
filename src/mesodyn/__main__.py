"""``python -m mesodyn``: the command line of :mod:`mesodyn.cli`."""

import sys

from mesodyn.cli import main

sys.exit(main())
