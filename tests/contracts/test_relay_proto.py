"""relay.proto, the binary form of the relay frames: it only ever grows, and its baseline is
the one recorded when binary frames were introduced."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from test_agent_proto import gen_proto  # the same folder (no package)


def _baseline() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(gen_proto.RELAY_BASELINE.read_bytes())


def _fields(fds: descriptor_pb2.FileDescriptorSet, message: str) -> dict[str, int]:
    found = next(m for m in fds.file[0].message_type if m.name == message)
    return {field.name: field.number for field in found.field}


class TestRelayProto:
    def test_the_tree_only_adds_to_the_baseline(self) -> None:
        assert gen_proto.breaking_changes(_baseline(), gen_proto.current_relay_set()) == []

    def test_fields_added_since_the_baseline_take_new_numbers(self) -> None:
        before = _fields(_baseline(), "ToolCall")
        now = _fields(gen_proto.current_relay_set(), "ToolCall")
        assert {name: now[name] for name in before} == before
        added = {name: number for name, number in now.items() if name not in before}
        assert added == {"audit_id": 11}
        assert min(added.values()) > max(before.values())

    def test_a_renumbered_field_is_caught(self) -> None:
        current = gen_proto.current_relay_set()
        broken = descriptor_pb2.FileDescriptorSet()
        broken.CopyFrom(current)
        call = next(m for m in broken.file[0].message_type if m.name == "ToolCall")
        next(f for f in call.field if f.name == "policy").number = 12
        problems = gen_proto.breaking_changes(_baseline(), broken)
        assert any("policy" in problem for problem in problems), problems
