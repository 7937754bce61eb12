"""Policy and identity: signed short-TTL bundles, deny-by-default decisions, caller tokens.

The pure parts (bundle verification, decisions, semver ranges, paths, egress, caller
tokens) are plain functions and classes, used by the host and again by the device bridge;
the ``PolicyCache`` actor beside them owns each tenant's current bundle on the host.
"""

from ._bundle import ANY as ANY
from ._bundle import BUNDLE_TYP as BUNDLE_TYP
from ._bundle import DEFAULT_CLOCK_SKEW_S as DEFAULT_CLOCK_SKEW_S
from ._bundle import DEFAULT_DENY as DEFAULT_DENY
from ._bundle import DEFAULT_MAX_TTL_S as DEFAULT_MAX_TTL_S
from ._bundle import MAX_BUNDLE_CHARS as MAX_BUNDLE_CHARS
from ._bundle import Accepted as Accepted
from ._bundle import Caps as Caps
from ._bundle import PolicyBundle as PolicyBundle
from ._bundle import Rule as Rule
from ._bundle import bundle_digest as bundle_digest
from ._bundle import bundle_validator as bundle_validator
from ._bundle import check_claims as check_claims
from ._bundle import compile_rules as compile_rules
from ._bundle import schema_problem as schema_problem
from ._bundle import sign_bundle as sign_bundle
from ._bundle import unsigned_bundle as unsigned_bundle
from ._bundle import unverified_claims as unverified_claims
from ._bundle import verify_bundle as verify_bundle
from ._cache import BundlePreparer as BundlePreparer
from ._cache import PolicyCache as PolicyCache
from ._cache import PolicyCacheConfig as PolicyCacheConfig
from ._cache import policy_cache_keys as policy_cache_keys
from ._caller import ANY_DEVICE as ANY_DEVICE
from ._caller import AUTHORIZATION as AUTHORIZATION
from ._caller import CALLER_TYP as CALLER_TYP
from ._caller import DEFAULT_AUDIENCE as DEFAULT_AUDIENCE
from ._caller import MAX_CALLER_TOKEN_CHARS as MAX_CALLER_TOKEN_CHARS
from ._caller import CallerClaims as CallerClaims
from ._caller import authorize_session as authorize_session
from ._caller import bearer_token as bearer_token
from ._caller import mint_caller_token as mint_caller_token
from ._caller import verify_caller_token as verify_caller_token
from ._decide import CallRequest as CallRequest
from ._decide import Decision as Decision
from ._decide import decide as decide
from ._decide import offers as offers
from ._decide import tightest_caps as tightest_caps
from ._egress import EgressPattern as EgressPattern
from ._egress import EgressRefused as EgressRefused
from ._egress import egress_targets as egress_targets
from ._errors import BundleRejected as BundleRejected
from ._errors import CallerForbidden as CallerForbidden
from ._errors import CallerRejected as CallerRejected
from ._errors import CallerUnauthenticated as CallerUnauthenticated
from ._errors import RejectReason as RejectReason
from ._ids import is_id as is_id
from ._jws import JwsError as JwsError
from ._jws import keys_by_id as keys_by_id
from ._jws import read_header as read_header
from ._paths import PathGlob as PathGlob
from ._paths import PathRefused as PathRefused
from ._paths import normalize_path as normalize_path
from ._paths import path_arguments as path_arguments
from ._semver import VersionRange as VersionRange
from ._semver import is_version as is_version
from ._source import BundleSource as BundleSource
from ._source import Fetched as Fetched
from ._source import SourceError as SourceError
from ._source import check_source as check_source
from ._state import StateError as StateError
from ._state import load_all as load_state
from .messages import GetPolicy as GetPolicy
from .messages import PolicyMessage as PolicyMessage
from .messages import PolicyView as PolicyView
from .messages import RefreshNow as RefreshNow

__all__ = [
    "ANY",
    "ANY_DEVICE",
    "AUTHORIZATION",
    "BUNDLE_TYP",
    "CALLER_TYP",
    "DEFAULT_AUDIENCE",
    "DEFAULT_CLOCK_SKEW_S",
    "DEFAULT_DENY",
    "DEFAULT_MAX_TTL_S",
    "MAX_BUNDLE_CHARS",
    "MAX_CALLER_TOKEN_CHARS",
    "Accepted",
    "BundlePreparer",
    "BundleRejected",
    "BundleSource",
    "CallRequest",
    "CallerClaims",
    "CallerForbidden",
    "CallerRejected",
    "CallerUnauthenticated",
    "Caps",
    "Decision",
    "EgressPattern",
    "EgressRefused",
    "Fetched",
    "GetPolicy",
    "JwsError",
    "PathGlob",
    "PathRefused",
    "PolicyBundle",
    "PolicyCache",
    "PolicyCacheConfig",
    "PolicyMessage",
    "PolicyView",
    "RefreshNow",
    "RejectReason",
    "Rule",
    "SourceError",
    "StateError",
    "VersionRange",
    "authorize_session",
    "bearer_token",
    "bundle_digest",
    "bundle_validator",
    "check_claims",
    "check_source",
    "compile_rules",
    "decide",
    "egress_targets",
    "is_id",
    "is_version",
    "keys_by_id",
    "load_state",
    "mint_caller_token",
    "normalize_path",
    "offers",
    "path_arguments",
    "policy_cache_keys",
    "read_header",
    "schema_problem",
    "sign_bundle",
    "tightest_caps",
    "unsigned_bundle",
    "unverified_claims",
    "verify_bundle",
    "verify_caller_token",
]
