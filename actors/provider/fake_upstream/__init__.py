"""A fake OpenAI-compatible upstream: a real HTTP server on loopback, scriptable to misbehave.

Shipped (not only a test helper) so that tests, benchmarks and demos start the same server.
"""

from ._script import Fault as Fault
from ._script import Script as Script
from ._script import ScriptedToolCall as ScriptedToolCall
from ._script import plan_response as plan_response
from ._server import FakeUpstream as FakeUpstream
from ._server import RecordedRequest as RecordedRequest
from ._server import open_fake_upstream as open_fake_upstream
from ._server import serve_fake_upstream as serve_fake_upstream

__all__ = [
    "FakeUpstream",
    "Fault",
    "RecordedRequest",
    "Script",
    "ScriptedToolCall",
    "open_fake_upstream",
    "plan_response",
    "serve_fake_upstream",
]
