"""Allow ``python -m csi_vso``."""

import sys

from csi_vso.cli import main

sys.exit(main())
