"""``python -m aquasurf_core ...`` is the ``aquasurf`` command (:mod:`aquasurf_core.cli`)."""

import sys

from aquasurf_core.cli import main

sys.exit(main())
