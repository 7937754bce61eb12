# Zero Latency: project tasks. Run through `python3 dev.py <recipe>` on a fresh machine,
# or `just <recipe>` inside the activated .venv.

set shell := ["bash", "-euo", "pipefail", "-c"]

python := justfile_directory() / ".venv/bin/python"

# List the recipes.
default:
    @just --list

# Make .venv and install the project with its dev tools.
setup:
    python3 dev.py --version

# See the system work: a host on TLS, a streamed chat, a tool call with its receipt.
demo:
    {{python}} -m supervisors demo

# The actor runtime on its own: write, supervise and restart an actor.
demo-actors:
    {{python}} examples/supervised_counter.py

# Run the whole test suite (the README's test command runs this).
test *args:
    @test -d tests/mcp_client/node/node_modules || npm ci --prefix tests/mcp_client/node --no-audit --no-fund
    {{python}} -m pytest {{args}}

# Format check, lint, types (strict) and the layer contracts.
check:
    {{python}} -m ruff format --check .
    {{python}} -m ruff check .
    {{python}} -m mypy
    {{python}} -m mypy scripts/gen_proto.py
    .venv/bin/lint-imports

# Regenerate protobuf code from contracts/api (`--check`: fail if stale or not additive).
proto *args:
    {{python}} scripts/gen_proto.py {{args}}

# Make or refresh the development CA and certificates (default .zl/certs).
dev-certs *args:
    .venv/bin/zl dev-certs {{args}}

# Serve fs.read over MCP stdio for the given roots.
mcp-fs *roots:
    {{python}} -m actors.mcp.fs_server {{roots}}

# Rewrite files to the project's format and fix what the linter can.
fmt:
    {{python}} -m ruff format .
    {{python}} -m ruff check --fix .

# Run every benchmark; each prints one JSON object on its last line (`--quick` for short runs).
bench *args:
    {{python}} -m bench.actors {{args}}
    {{python}} -m bench.ttft {{args}}
    {{python}} -m bench.tool_call {{args}}
    {{python}} -m bench.bridge {{args}}
    {{python}} -m bench.provider {{args}}
    {{python}} -m bench.adapter_cpu {{args}}
    {{python}} -m bench.shards {{args}}

# Time to first token and streaming gaps under 1, 100 and 1000 sessions.
bench-ttft *args:
    {{python}} -m bench.ttft {{args}}

# What the tool gateway adds to an fs.read over stdio.
bench-tool-call *args:
    {{python}} -m bench.tool_call {{args}}

# Tool relay and device bridge: overhead against direct stdio, and idle devices per shard.
bench-bridge *args:
    {{python}} -m bench.bridge {{args}}

# What the host adds to time to first token with the OpenAI-compatible adapter.
bench-provider *args:
    {{python}} -m bench.provider {{args}}

# CPU per completion of the OpenAI-compatible adapter, against a bare client.
bench-adapter-cpu *args:
    {{python}} -m bench.adapter_cpu {{args}}

# Rotate runs of one benchmark over git revisions and print medians, e.g.
# `just bench-compare main WORKTREE --rounds 6 -- --concurrency 100`.
bench-compare *args:
    {{python}} -m bench.compare {{args}}

# Install the npm MCP server the interop tests drive (also done by `.ci/run`).
node-deps:
    npm ci --prefix tests/mcp_client/node --no-audit --no-fund

# Benchmark the actor runtime against bare Trio channels.
bench-actors *args:
    {{python}} -m bench.actors {{args}}

# Rendezvous hashing of 100k tenants over 3..16 relay shards: what moves when N changes.
bench-shards *args:
    {{python}} -m bench.shards {{args}}
