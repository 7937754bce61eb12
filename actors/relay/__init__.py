"""The tool relay's domain: frames and their codec, bearer tokens, shard choice.

The public surface is pure logic (no Trio, no sockets): both codecs (JSON ``zl.relay.v1``
and binary ``zl.relay.v1+proto``) and the choice between them. The connection actors, the
client dialler (``_dial.open_relay_websocket``) and a connection's coalescing writer
(``_codec.FrameWriter``) live in private modules.
"""

from ._binary import BINARY_SUBPROTOCOL as BINARY_SUBPROTOCOL
from ._binary import MAX_FRAMES_PER_MESSAGE as MAX_FRAMES_PER_MESSAGE
from ._binary import decode_binary_batch as decode_binary_batch
from ._binary import decode_binary_frames as decode_binary_frames
from ._binary import encode_binary_frames as encode_binary_frames
from ._codec import BINARY_CODEC as BINARY_CODEC
from ._codec import JSON_CODEC as JSON_CODEC
from ._codec import OFFERED_SUBPROTOCOLS as OFFERED_SUBPROTOCOLS
from ._codec import FrameCodec as FrameCodec
from ._codec import choose_subprotocol as choose_subprotocol
from ._codec import codec_for as codec_for
from ._errors import BadFrame as BadFrame
from ._errors import Forbidden as Forbidden
from ._errors import KeyFileError as KeyFileError
from ._errors import Unauthenticated as Unauthenticated
from ._frames import FRAME_CLASSES as FRAME_CLASSES
from ._frames import SUBPROTOCOL as SUBPROTOCOL
from ._frames import Caps as Caps
from ._frames import Catalog as Catalog
from ._frames import CatalogGet as CatalogGet
from ._frames import DeviceHello as DeviceHello
from ._frames import DeviceHelloAck as DeviceHelloAck
from ._frames import ErrorFrame as ErrorFrame
from ._frames import Frame as Frame
from ._frames import Ping as Ping
from ._frames import Pong as Pong
from ._frames import Redirect as Redirect
from ._frames import Tool as Tool
from ._frames import ToolCall as ToolCall
from ._frames import ToolCancel as ToolCancel
from ._frames import ToolProgress as ToolProgress
from ._frames import ToolResult as ToolResult
from ._frames import decode_frame as decode_frame
from ._frames import encode_frame as encode_frame
from ._limits import DEFAULT_MAX_FRAME_BYTES as DEFAULT_MAX_FRAME_BYTES
from ._limits import DEFAULT_MAX_HOST_FRAME_BYTES as DEFAULT_MAX_HOST_FRAME_BYTES
from ._limits import MAX_FRAME_DEPTH as MAX_FRAME_DEPTH
from ._limits import check_outbound_size as check_outbound_size
from ._limits import result_budget as result_budget
from ._shards import Shard as Shard
from ._shards import redirect_for as redirect_for
from ._shards import shard_for as shard_for
from ._tokens import DEFAULT_AUDIENCE as DEFAULT_AUDIENCE
from ._tokens import Claims as Claims
from ._tokens import DeviceClaims as DeviceClaims
from ._tokens import HostClaims as HostClaims
from ._tokens import authorize as authorize
from ._tokens import generate_signing_key as generate_signing_key
from ._tokens import key_id as key_id
from ._tokens import load_private_key as load_private_key
from ._tokens import load_public_key as load_public_key
from ._tokens import mint_device_token as mint_device_token
from ._tokens import mint_host_token as mint_host_token
from ._tokens import save_private_key as save_private_key
from ._tokens import save_public_key as save_public_key
from ._tokens import token_main as token_main
from ._tokens import verify_token as verify_token
from ._wire import encode_for_link as encode_for_link

__all__ = [
    "BINARY_CODEC",
    "BINARY_SUBPROTOCOL",
    "DEFAULT_AUDIENCE",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_HOST_FRAME_BYTES",
    "FRAME_CLASSES",
    "JSON_CODEC",
    "MAX_FRAMES_PER_MESSAGE",
    "MAX_FRAME_DEPTH",
    "OFFERED_SUBPROTOCOLS",
    "SUBPROTOCOL",
    "BadFrame",
    "Caps",
    "Catalog",
    "CatalogGet",
    "Claims",
    "DeviceClaims",
    "DeviceHello",
    "DeviceHelloAck",
    "ErrorFrame",
    "Forbidden",
    "Frame",
    "FrameCodec",
    "HostClaims",
    "KeyFileError",
    "Ping",
    "Pong",
    "Redirect",
    "Shard",
    "Tool",
    "ToolCall",
    "ToolCancel",
    "ToolProgress",
    "ToolResult",
    "Unauthenticated",
    "authorize",
    "check_outbound_size",
    "choose_subprotocol",
    "codec_for",
    "decode_binary_batch",
    "decode_binary_frames",
    "decode_frame",
    "encode_binary_frames",
    "encode_for_link",
    "encode_frame",
    "generate_signing_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "mint_device_token",
    "mint_host_token",
    "redirect_for",
    "result_budget",
    "save_private_key",
    "save_public_key",
    "shard_for",
    "token_main",
    "verify_token",
]
