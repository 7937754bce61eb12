"""Span attribute names, and what each may hold: which values the exporter must redact.

Every string a span carries out of the process goes through the redactor
(``RedactingSpanExporter``), except the values of the keys classified ``HOST_ID`` here
*when they have that key's shape*: ids that a process of ours makes itself from a random
source (``uuid4``), in one fixed form, which no user, model or device chooses. A value
under such a key that does not have the shape (another process's, or a mistake) is
redacted like any other. Numbers and booleans are never scanned: the redactor finds
nothing in them. Everything else is redacted, whatever its kind says, and repeated values
(names, enums, codes) cost one cache lookup.

Every key a span may carry is listed in ``ATTRIBUTE_KINDS``; a test fails when a span
carries one that is not, so a new attribute is classified when it is added.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Final


class AttributeKind(enum.Enum):
    """What an attribute's value may carry."""

    #: An id made by one of our processes from a random source, in a fixed shape
    #: (``ID_SHAPES``): exported as it is when it has that shape, redacted otherwise.
    HOST_ID = "host_id"
    #: Numbers or booleans: nothing to redact (a string under such a key is redacted).
    NUMBER = "number"
    #: A name from a closed or configured set (tools, models, outcomes, catalog codes) or an
    #: id chosen elsewhere (tenants, devices, calls): redacted; repeated values are cached.
    NAME = "name"
    #: Free text that may carry user, model or device content (messages, paths,
    #: arguments): redacted.
    TEXT = "text"


# Span attribute names.
ATTR_SESSION: Final = "zl.session.id"
ATTR_TURN: Final = "zl.turn.id"
ATTR_TENANT: Final = "zl.tenant"
ATTR_TOOL: Final = "zl.tool.name"
ATTR_TOOL_VERSION: Final = "zl.tool.version"
ATTR_CALL: Final = "zl.tool.call_id"
ATTR_DEVICE: Final = "zl.device.id"
ATTR_OUTCOME: Final = "zl.tool.outcome"
ATTR_ERROR_CODE: Final = "zl.error.code"
ATTR_AUDIT: Final = "zl.audit.id"
ATTR_POLICY_DECISION: Final = "zl.policy.decision"
ATTR_POLICY_REVISION: Final = "zl.policy.revision"
ATTR_POLICY_RULE: Final = "zl.policy.rule_id"
ATTR_CANCELLED: Final = "zl.cancelled"
# OpenTelemetry GenAI semantic conventions (the provider request's span).
GEN_AI_OPERATION: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
# Not (yet) a span attribute of the conventions, which define it as a metric only.
ATTR_TIME_TO_FIRST_CHUNK: Final = "zl.gen_ai.time_to_first_chunk_ms"
# MCP semantic conventions (the MCP server's span).
MCP_METHOD: Final = "mcp.method.name"
# The relay's shard (set by the relay, ``actors.relay``).
ATTR_RELAY_SHARD: Final = "zl.relay.shard"

#: Every span attribute key, by what its value may carry.
ATTRIBUTE_KINDS: Final[Mapping[str, AttributeKind]] = {
    # Made by the host: a session's uuid4 digits, a turn's number, a record's uuid4.
    ATTR_SESSION: AttributeKind.HOST_ID,
    ATTR_TURN: AttributeKind.HOST_ID,
    ATTR_AUDIT: AttributeKind.HOST_ID,
    ATTR_TENANT: AttributeKind.NAME,
    ATTR_DEVICE: AttributeKind.NAME,
    ATTR_CALL: AttributeKind.NAME,  # ends with the model's own call id
    ATTR_TOOL: AttributeKind.NAME,
    ATTR_TOOL_VERSION: AttributeKind.NAME,
    ATTR_OUTCOME: AttributeKind.NAME,
    ATTR_ERROR_CODE: AttributeKind.NAME,
    ATTR_POLICY_DECISION: AttributeKind.NAME,
    ATTR_POLICY_REVISION: AttributeKind.NAME,
    ATTR_POLICY_RULE: AttributeKind.NAME,
    ATTR_CANCELLED: AttributeKind.NUMBER,
    GEN_AI_OPERATION: AttributeKind.NAME,
    GEN_AI_PROVIDER: AttributeKind.NAME,
    GEN_AI_REQUEST_MODEL: AttributeKind.NAME,
    GEN_AI_RESPONSE_MODEL: AttributeKind.NAME,  # the upstream's answer
    GEN_AI_INPUT_TOKENS: AttributeKind.NUMBER,
    GEN_AI_OUTPUT_TOKENS: AttributeKind.NUMBER,
    GEN_AI_FINISH_REASONS: AttributeKind.NAME,  # the upstream's answer
    GEN_AI_MAX_TOKENS: AttributeKind.NUMBER,
    GEN_AI_TOOL_NAME: AttributeKind.NAME,
    ATTR_TIME_TO_FIRST_CHUNK: AttributeKind.NUMBER,
    MCP_METHOD: AttributeKind.NAME,
    ATTR_RELAY_SHARD: AttributeKind.NAME,
    # What ``record_exception`` writes on its event.
    "exception.type": AttributeKind.NAME,
    "exception.message": AttributeKind.TEXT,
    "exception.stacktrace": AttributeKind.TEXT,
    "exception.escaped": AttributeKind.NAME,
}

#: The one shape of each ``HOST_ID`` key's values, as its maker writes them: a session id
#: is 16 hex digits of a uuid4 (``supervisors.host``), a turn id ``t`` and the session's
#: turn number (``actors.session``), an audit id ``turn_`` or ``rcpt_`` and a uuid4's 32
#: hex digits (``actors.audit``). No built-in class finds anything in a value of these
#: shapes (a test checks it), so skipping the scan changes nothing that is exported; a
#: session id must hold a letter, because 16 digits could pass for a card number.
ID_SHAPES: Final[Mapping[str, re.Pattern[str]]] = {
    ATTR_SESSION: re.compile(r"(?=[0-9]*[a-f])[0-9a-f]{16}"),
    ATTR_TURN: re.compile(r"t[1-9][0-9]{0,8}"),
    ATTR_AUDIT: re.compile(r"(?:turn|rcpt)_[0-9a-f]{32}"),
}
