"""``python -m supervisors.bridge``: the same as ``zl-bridge``."""

from ._bridge import main

main()
