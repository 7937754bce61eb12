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
demo *args:
    {{python}} -m supervisors demo {{args}}

# The actor runtime on its own: write, supervise and restart an actor.
demo-actors:
    {{python}} examples/supervised_counter.py

# Run the whole test suite (the README's test command runs this).
test *args:
    @test -d tests/mcp_client/node/node_modules || npm ci --prefix tests/mcp_client/node --no-audit --no-fund
    @test -d examples/bff/node/node_modules || npm ci --prefix examples/bff/node --no-audit --no-fund
    {{python}} -m pytest {{args}}

# Format check, lint, types (strict) and the layer contracts.
check:
    {{python}} -m ruff format --check .
    {{python}} -m ruff check .
    {{python}} -m mypy
    {{python}} -m mypy scripts/gen_proto.py
    {{python}} -m mypy scripts/contract_baselines.py
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
    {{python}} -m bench.redact {{args}}
    {{python}} -m bench.bff {{args}}
    {{python}} -m bench.policy {{args}}
    {{python}} -m bench.shards {{args}}
    {{python}} -m bench.telemetry {{args}}

# Time to first token and streaming gaps under 1, 100 and 1000 sessions.
bench-ttft *args:
    {{python}} -m bench.ttft {{args}}

# What the tool gateway adds to an fs.read over stdio.
bench-tool-call *args:
    {{python}} -m bench.tool_call {{args}}

# Tool relay and device bridge: overhead against direct stdio, and idle devices per shard.
bench-bridge *args:
    {{python}} -m bench.bridge {{args}}

# What policy costs: a decision, a bundle verification, a tool call with policy on vs off.
bench-policy *args:
    {{python}} -m bench.policy {{args}}

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
    npm ci --prefix examples/bff/node --no-audit --no-fund

# What the BFF adds to time to first token over a direct gRPC client (1 and 100 sessions).
bench-bff *args:
    {{python}} -m bench.bff {{args}}

# CPU per token of the BFF's gRPC client against grpcio (asyncio, and bridged into Trio).
bench-grpc-client *args:
    {{python}} -m bench.grpc_client {{args}}

# Run the BFF (HTTPS, SSE, chat page) in front of a host; settings from ZL_* or --config.
bff *args:
    .venv/bin/zl bff {{args}}

# Redaction throughput on a 10 MiB mixed corpus, and what it adds to a 1 MiB fs.read result.
bench-redact *args:
    {{python}} -m bench.redact {{args}}

# What telemetry costs a turn, piece by piece (spans, metrics, redaction, OTLP encoding).
bench-telemetry *args:
    {{python}} -m bench.telemetry {{args}}

# Benchmark the actor runtime against bare Trio channels.
bench-actors *args:
    {{python}} -m bench.actors {{args}}

# Break the system on purpose (kill -9, network faults, fault injection, a full disk) and
# check each fault ends in a typed error, a receipt and a recovery (`--quick`, `--only a,b`).
chaos *args:
    {{python}} -m bench.chaos {{args}}

# Sessions streaming with tool calls through relay and bridge for N minutes; reports the
# slopes of descriptors, tasks and memory of every process (`--minutes 10`).
soak *args:
    {{python}} -m bench.soak {{args}}

# Build the container images with podman (`host relay` by default; works offline, see
# deploy/scripts/build-images.sh).
images *names:
    ZL_PYTHON={{python}} deploy/scripts/build-images.sh {{names}}

# Render the Kubernetes manifests (kustomize, offline) for N relay shards, e.g. `just k8s 3`.
k8s shards="3":
    {{python}} deploy/k8s/shards.py --replicas {{shards}} --check
    .venv/bin/kubectl kustomize deploy/k8s

# What installing the bridge costs: pipx install of the main and the bridge distribution.
bench-bridge-install *args:
    {{python}} -m bench.bridge_install {{args}}
# Rendezvous hashing of 100k tenants over 3..16 relay shards: what moves when N changes.
bench-shards *args:
    {{python}} -m bench.shards {{args}}
