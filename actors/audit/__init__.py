"""The audit: tool receipts and turn summaries in an append-only, hash-chained JSON-lines file.

``AuditWriter`` is the one actor per process that owns the file; the pure logic (canonical
digests, the chain, verification) sits beside it and is usable without Trio.
"""

from ._chain import Anchor as Anchor
from ._chain import Chain as Chain
from ._chain import Problem as Problem
from ._chain import VerifyReport as VerifyReport
from ._chain import verify_lines as verify_lines
from ._cli import audit_main as audit_main
from ._digest import GENESIS as GENESIS
from ._digest import canonical_digest as canonical_digest
from ._digest import canonical_json as canonical_json
from ._errors import AuditCorrupt as AuditCorrupt
from ._errors import AuditError as AuditError
from ._errors import AuditFileError as AuditFileError
from ._errors import NotCanonical as NotCanonical
from ._export import AuditExportConfig as AuditExportConfig
from ._export import AuditExporter as AuditExporter
from ._export import ExportCursor as ExportCursor
from ._export import ExportStatus as ExportStatus
from ._export import ExportStopped as ExportStopped
from ._export import load_export_cursor as load_export_cursor
from ._file import AuditFile as AuditFile
from ._file import FsyncPolicy as FsyncPolicy
from ._file import verify_audit as verify_audit
from ._proof import ProofError as ProofError
from ._proof import check_proof as check_proof
from ._proof import make_proof as make_proof
from ._records import CHECKPOINT_KIND as CHECKPOINT_KIND
from ._records import OPENED_KIND as OPENED_KIND
from ._records import RECEIPT_KIND as RECEIPT_KIND
from ._records import TURN_KIND as TURN_KIND
from ._records import Caps as Caps
from ._records import Outcome as Outcome
from ._records import Stopwatch as Stopwatch
from ._records import Timing as Timing
from ._records import ToolReceipt as ToolReceipt
from ._records import TurnSummary as TurnSummary
from ._records import new_receipt_id as new_receipt_id
from ._records import new_turn_id as new_turn_id
from ._records import utc_now as utc_now
from ._schema import record_problem as record_problem
from ._signing import CheckpointSigner as CheckpointSigner
from ._signing import load_public_keys as load_public_keys
from ._writer import AUDIT_MAILBOX_CAPACITY as AUDIT_MAILBOX_CAPACITY
from ._writer import AuditConfig as AuditConfig
from ._writer import AuditWriter as AuditWriter
from ._writer import Redactor as Redactor
from ._writer import no_redaction as no_redaction
from .messages import Appended as Appended
from .messages import AppendReceipt as AppendReceipt
from .messages import AppendRecord as AppendRecord
from .messages import AppendTurn as AppendTurn
from .messages import AuditMessage as AuditMessage
from .messages import Checkpoint as Checkpoint
from .messages import Sync as Sync

__all__ = [
    "AUDIT_MAILBOX_CAPACITY",
    "CHECKPOINT_KIND",
    "GENESIS",
    "OPENED_KIND",
    "RECEIPT_KIND",
    "TURN_KIND",
    "Anchor",
    "AppendReceipt",
    "AppendRecord",
    "AppendTurn",
    "Appended",
    "AuditConfig",
    "AuditCorrupt",
    "AuditError",
    "AuditExportConfig",
    "AuditExporter",
    "AuditFile",
    "AuditFileError",
    "AuditMessage",
    "AuditWriter",
    "Caps",
    "Chain",
    "Checkpoint",
    "CheckpointSigner",
    "ExportCursor",
    "ExportStatus",
    "ExportStopped",
    "FsyncPolicy",
    "NotCanonical",
    "Outcome",
    "Problem",
    "ProofError",
    "Redactor",
    "Stopwatch",
    "Sync",
    "Timing",
    "ToolReceipt",
    "TurnSummary",
    "VerifyReport",
    "audit_main",
    "canonical_digest",
    "canonical_json",
    "check_proof",
    "load_export_cursor",
    "load_public_keys",
    "make_proof",
    "new_receipt_id",
    "new_turn_id",
    "no_redaction",
    "record_problem",
    "utc_now",
    "verify_audit",
    "verify_lines",
]
