"""``python -m actors.mcp.fs_server ROOT...``."""

from ._main import main

raise SystemExit(main())
