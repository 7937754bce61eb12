"""Counting what a client asks of a connection, so that abuse is cut off (pure, no I/O).

HTTP/2 lets a client make the server work without a call ever running: open and reset
streams as fast as it can write them (the "rapid reset" attack, CVE-2023-44487), or send
SETTINGS, PING or PRIORITY frames that each need processing or an acknowledgement, and
never read the acknowledgements. The major servers answered by counting such frames per
connection and closing it with ``ENHANCE_YOUR_CALM`` past a budget; so does this edge.
"""

from __future__ import annotations


class FrameBudget:
    """At most ``limit`` events per window of ``window_s`` seconds (fixed windows).

    A fixed window lets a burst of up to twice the limit straddle a boundary; that bound
    is what matters here, and it costs one comparison per event.
    """

    __slots__ = ("count", "limit", "started", "window_s")

    def __init__(self, limit: int, window_s: float, now: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.started = now
        self.count = 0

    def spend(self, now: float) -> bool:
        """Count one event at ``now``; False once the window's budget is exceeded."""
        if now - self.started >= self.window_s:
            self.started = now
            self.count = 0
        self.count += 1
        return self.count <= self.limit
