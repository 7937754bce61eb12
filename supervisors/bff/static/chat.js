// The chat page of the Zero Latency BFF: sessions, streamed turns (SSE over fetch),
// tool calls with their receipts, typed errors, cancel. No external code.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { session: null, running: false, abort: null };

function token() { return $("token").value.trim(); }

function status(text) { $("status").textContent = text; }

function item(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  if (text !== undefined) li.textContent = text;
  $("log").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function meta(li, text, testId) {
  const span = document.createElement("span");
  span.className = "meta";
  if (testId) span.dataset.testid = testId;
  span.textContent = text;
  li.appendChild(span);
  return span;
}

class Problem extends Error {
  constructor(body, status) {
    super(body.detail || "HTTP " + status);
    this.code = body.code || "http." + status;
    this.retryable = !!body.retryable;
    this.status = status;
  }
}

async function api(path, body, signal) {
  const headers = { "authorization": "Bearer " + token() };
  const init = { method: body === undefined ? "GET" : "POST", headers, signal };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch (_) { /* not a problem document */ }
    throw new Problem(problem, response.status);
  }
  return response;
}

function showError(error) {
  if (error instanceof Problem) {
    const li = item("error", error.code + ": " + error.message);
    meta(li, error.retryable ? "You may try again." : "Trying again will not help.");
    li.dataset.code = error.code;
  } else if (error.name !== "AbortError") {
    item("error", "network: " + error.message);
  }
}

async function ensureSession() {
  if (state.session) return state.session;
  if (!token()) throw new Problem({ code: "unauthenticated", detail: "enter a caller token first" }, 401);
  const response = await api("/v1/sessions", { device_id: $("device").value.trim() });
  state.session = await response.json();
  const s = state.session;
  status("Session " + s.session_id + " (tenant " + s.tenant + ", user " + s.user +
         (s.device_id ? ", device " + s.device_id : ", no device") + ").");
  return s;
}

function summary(result) {
  if (result === null || typeof result !== "object") return String(result);
  const parts = [];
  for (const [key, value] of Object.entries(result)) {
    if (key === "content") continue;
    parts.push(key + "=" + JSON.stringify(value));
  }
  if (typeof result.content === "string") {
    const text = result.content.length > 80 ? result.content.slice(0, 80) + "…" : result.content;
    parts.push("content=" + JSON.stringify(text));
  }
  return parts.join(", ");
}

function onEvent(name, data, turn) {
  if (name === "assistant.delta") {
    if (!turn.answer) { turn.answer = item("assistant", ""); turn.answer.dataset.turn = data.turn_id; }
    turn.answer.appendChild(document.createTextNode(data.text));
  } else if (name === "tool.call.started") {
    const li = item("tool", "Tool " + data.tool + "@" + data.version +
                    (data.device_id ? " on " + data.device_id : "") + " ");
    li.dataset.callId = data.call_id;
    const args = document.createElement("code");
    args.textContent = JSON.stringify(data.args);
    li.appendChild(args);
    meta(li, "running…", "tool-status");
    turn.tools[data.call_id] = li;
    turn.answer = null;
  } else if (name === "tool.call.delta") {
    const li = turn.tools[data.call_id] || item("tool", "Tool call " + data.call_id);
    const line = li.querySelector("[data-testid=tool-status]") || meta(li, "", "tool-status");
    let text = data.status;
    if (data.result !== undefined) text += ": " + summary(data.result);
    if (data.error) text += ": " + data.error.code + ": " + data.error.message;
    line.textContent = text;
    if (data.receipt_id) {
      meta(li, "receipt " + data.receipt_id, "receipt").dataset.receipt = data.receipt_id;
    }
    turn.answer = null;
  } else if (name === "assistant.done") {
    const li = turn.answer || item("assistant", "");
    const u = data.usage || {};
    const done = meta(li, (data.finish_reason === "cancelled" ? "cancelled" : "done: " + data.finish_reason) +
                      " · tokens in " + u.input_tokens + ", out " + u.output_tokens, "done");
    done.dataset.finish = data.finish_reason;
    turn.finished = true;
  } else if (name === "error") {
    const e = data.error || {};
    const li = item("error", e.code + ": " + e.message);
    li.dataset.code = e.code;
    meta(li, e.retryable ? "You may try again." : "Trying again will not help.");
    turn.finished = true;
  }
}

async function readEvents(response, turn) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data), turn);
    }
  }
}

function setRunning(running) {
  state.running = running;
  $("send").disabled = running;
  $("cancel").disabled = !running;
  $("message").setAttribute("aria-busy", running ? "true" : "false");
}

async function sendMessage(text) {
  setRunning(true);
  const turn = { answer: null, tools: {}, finished: false };
  try {
    for (let attempt = 0; ; attempt++) {
      const session = await ensureSession();
      if (attempt === 0) item("user", text);
      state.abort = new AbortController();
      try {
        const response = await api("/v1/chat/stream",
          { session_id: session.session_id, message: text }, state.abort.signal);
        await readEvents(response, turn);
        break;
      } catch (error) {
        if (error instanceof Problem && error.code === "session.not_found" && attempt === 0) {
          state.session = null;  // it ended (idle, or the token expired): start another
          continue;
        }
        throw error;
      }
    }
    if (!turn.finished) item("error", "the answer stopped before its end");
  } catch (error) {
    showError(error);
  } finally {
    state.abort = null;
    setRunning(false);
    $("message").focus();
  }
}

async function cancelTurn() {
  if (!state.running || !state.session) return;
  status("Cancelling…");
  try {
    await api("/v1/sessions/" + state.session.session_id + "/cancel", {});
    status("Cancelled. Session " + state.session.session_id + ".");
  } catch (error) {
    showError(error);
  }
}

async function newSession() {
  if (state.abort) state.abort.abort();
  const old = state.session;
  state.session = null;
  status("Not connected.");
  if (old) {
    try {
      await fetch("/v1/sessions/" + old.session_id,
        { method: "DELETE", headers: { "authorization": "Bearer " + token() } });
    } catch (_) { /* it ends on its own when idle */ }
  }
}

function init() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const saved = sessionStorage.getItem("zl-token");
  if (fragment.get("token")) {
    $("token").value = fragment.get("token");
    sessionStorage.setItem("zl-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname);
  } else if (saved) {
    $("token").value = saved;
  }
  if (fragment.get("device")) $("device").value = fragment.get("device");
  $("token").addEventListener("change", () => {
    sessionStorage.setItem("zl-token", token());
    state.session = null;
  });
  $("device").addEventListener("change", () => { state.session = null; });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value.trim();
    if (!text || state.running) return;
    $("message").value = "";
    sendMessage(text);
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape") {
      cancelTurn();
    }
  });
  $("cancel").addEventListener("click", cancelTurn);
  $("new-session").addEventListener("click", newSession);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", init);
