"""``python -m supervisors.relay``: the same as ``zl relay``."""

import sys

from ._cli import relay_main

sys.exit(relay_main())
