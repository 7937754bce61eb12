"""zl_actors: supervised actors on Trio, with bounded mailboxes and typed messages.

The public surface is re-exported here; the modules behind it are private.
"""

from ._actor import Actor as Actor
from ._actor import ActorContext as ActorContext
from ._actor import DeferredReply as DeferredReply
from ._actor import TaskActor as TaskActor
from ._eager_stream import EagerSocketStream as EagerSocketStream
from ._errors import ActorCrashed as ActorCrashed
from ._errors import ActorError as ActorError
from ._errors import ActorStopped as ActorStopped
from ._errors import ActorSystemCrashed as ActorSystemCrashed
from ._errors import AskTimeout as AskTimeout
from ._errors import DuplicateName as DuplicateName
from ._errors import FaultInjectionDisabled as FaultInjectionDisabled
from ._errors import InjectedCrash as InjectedCrash
from ._errors import MailboxFull as MailboxFull
from ._errors import NoSuchActor as NoSuchActor
from ._errors import SpawnError as SpawnError
from ._errors import SupervisorGaveUp as SupervisorGaveUp
from ._errors import TooManyChildren as TooManyChildren
from ._faults import FaultInjector as FaultInjector
from ._ref import DEFAULT_ASK_TIMEOUT_S as DEFAULT_ASK_TIMEOUT_S
from ._ref import ActorRef as ActorRef
from ._ref import SupervisorRef as SupervisorRef
from ._snapshot import ActorSnapshot as ActorSnapshot
from ._snapshot import FailureSnapshot as FailureSnapshot
from ._snapshot import MailboxInfo as MailboxInfo
from ._snapshot import RecentFailure as RecentFailure
from ._snapshot import render_failures as render_failures
from ._snapshot import render_tree as render_tree
from ._snapshot import snapshot_from_json as snapshot_from_json
from ._spec import ActorSpec as ActorSpec
from ._spec import Backoff as Backoff
from ._spec import ChildSpec as ChildSpec
from ._spec import Request as Request
from ._spec import Restart as Restart
from ._spec import RestartIntensity as RestartIntensity
from ._spec import Strategy as Strategy
from ._spec import SupervisorSpec as SupervisorSpec
from ._system import ActorSystem as ActorSystem
from ._system import open_actor_system as open_actor_system

__all__ = [
    "DEFAULT_ASK_TIMEOUT_S",
    "Actor",
    "ActorContext",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorSnapshot",
    "ActorSpec",
    "ActorStopped",
    "ActorSystem",
    "ActorSystemCrashed",
    "AskTimeout",
    "Backoff",
    "ChildSpec",
    "DeferredReply",
    "DuplicateName",
    "EagerSocketStream",
    "FailureSnapshot",
    "FaultInjectionDisabled",
    "FaultInjector",
    "InjectedCrash",
    "MailboxFull",
    "MailboxInfo",
    "NoSuchActor",
    "RecentFailure",
    "Request",
    "Restart",
    "RestartIntensity",
    "SpawnError",
    "Strategy",
    "SupervisorGaveUp",
    "SupervisorRef",
    "SupervisorSpec",
    "TaskActor",
    "TooManyChildren",
    "open_actor_system",
    "render_failures",
    "render_tree",
    "snapshot_from_json",
]
