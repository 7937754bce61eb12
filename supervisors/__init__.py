"""Processes: the host, the relay and the bridge, each a supervision tree with its edges and CLI."""
