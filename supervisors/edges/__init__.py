"""The network edges of the processes (gRPC server, WebSocket servers and clients)."""
