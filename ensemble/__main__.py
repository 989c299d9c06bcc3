"""``python -m ensemble`` runs the ``gan-ensemble`` command line."""

import sys

from ensemble.cli import main

sys.exit(main())
