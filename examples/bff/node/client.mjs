// A BFF of your own, in Node: one StreamChat session with @grpc/grpc-js (docs/bff.md).
//
//   npm ci --prefix examples/bff/node
//   node examples/bff/node/client.mjs --target localhost:50051 --ca .zl/certs/ca.pem \
//     --token-file caller.jwt --tenant acme --user alice --device laptop-7 \
//     "hello" "please read notes.txt"
//
// The same steps as examples/bff/streamchat_client.py: the caller's token and a
// traceparent in the metadata, a deadline, start_session, one user_message per turn,
// sequence numbers checked, cancel_turn after --cancel-after N deltas of the last turn,
// and reading as fast as we can use the events (grpc-js applies HTTP/2 flow control).
// The last line printed is a JSON summary of the session.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const PROTO = join(here, "..", "..", "..", "contracts", "api", "internal", "agent.proto");

const { values: opts, positionals: messages } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: "string", default: "localhost:50051" },
    ca: { type: "string" },
    "token-file": { type: "string" },
    tenant: { type: "string" },
    user: { type: "string", default: "" },
    device: { type: "string", default: "" },
    "deadline-s": { type: "string", default: "120" },
    "cancel-after": { type: "string", default: "0" },
  },
});

const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, defaults: true, oneofs: true });
const { Agent } = grpc.loadPackageDefinition(definition).zl.agent.v0;

const token = opts["token-file"] ? readFileSync(opts["token-file"], "utf8").trim() : process.env.ZL_TOKEN;
const client = new Agent(opts.target, grpc.credentials.createSsl(readFileSync(opts.ca)));

const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${token}`);
metadata.set("traceparent", `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`);
const deadline = new Date(Date.now() + Number(opts["deadline-s"]) * 1000);
const cancelAfter = Number(opts["cancel-after"]);

const call = client.StreamChat(metadata, { deadline });
const pending = [...messages];
const summary = { turns: [], seq_ok: true, errors: [] };
let expectedSeq = 1;
let turn = null;

function next() {
  if (pending.length === 0) {
    call.end();
    return;
  }
  turn = { text: "", deltas: 0, tools: [] };
  call.write({ user_message: { text: pending.shift() } });
}

call.on("data", (event) => {
  if (event.seq !== expectedSeq) summary.seq_ok = false;
  expectedSeq = event.seq + 1;
  switch (event.event) {
    case "session_started":
      summary.session_id = event.session_id;
      next();
      break;
    case "assistant_delta":
      turn.text += event.assistant_delta.text;
      turn.deltas += 1;
      process.stdout.write(event.assistant_delta.text);
      if (turn.deltas === cancelAfter && pending.length === 0) call.write({ cancel_turn: {} });
      break;
    case "tool_call_started": {
      const started = event.tool_call_started;
      turn.tools.push({ tool: started.tool, args: JSON.parse(started.args_json) });
      console.log(`\n[tool ${started.tool} ${started.args_json}]`);
      break;
    }
    case "tool_call_delta": {
      const delta = event.tool_call_delta;
      Object.assign(turn.tools.at(-1), { status: delta.status, receipt_id: delta.receipt_id });
      console.log(`[tool ${delta.status}, receipt ${delta.receipt_id}]`);
      break;
    }
    case "assistant_done":
      turn.finish_reason = event.assistant_done.finish_reason;
      turn.output_tokens = event.assistant_done.usage.output_tokens;
      summary.turns.push(turn);
      console.log(`\n[done: ${turn.finish_reason}]`);
      next();
      break;
    case "error":
      // retryable says whether the same request may succeed if sent again.
      summary.errors.push({ code: event.error.code, retryable: event.error.retryable });
      console.log(`\n[error ${event.error.code} (retryable: ${event.error.retryable})]`);
      if (event.turn_id || event.session_id) next();
      break;
  }
});

// The call is over when its status has come and its messages have all been read.
let status = null;
let drained = false;
function finish() {
  if (status === null || !drained || summary.status) return;
  summary.status = grpc.status[status.code];
  if (status.code !== grpc.status.OK) console.error(`call ended: ${summary.status}: ${status.details}`);
  console.log(JSON.stringify(summary));
  client.close();
  process.exitCode = status.code === grpc.status.OK ? 0 : 1;
}
call.on("status", (s) => { status = s; finish(); });
call.on("end", () => { drained = true; finish(); });
call.on("error", () => { drained = true; finish(); });

call.write({ start_session: { tenant: opts.tenant, user: opts.user, device_id: opts.device } });
