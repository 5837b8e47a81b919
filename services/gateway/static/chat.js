// qvllm chat page: streams /v1/chat/completions (SSE) through the gateway.
// - Keeps the conversation inside the model's context window: the oldest turns stop being sent
//   (they stay on screen, dimmed, with a note saying so); a context-length error from the server
//   drops one more turn and retries.
// - Renders answers as Markdown with markdown-it (vendored; raw HTML off, images off).
// - Shows per answer the time to first token, tokens/s and which replica (vLLM endpoint) answered.
// - "New chat" forgets the conversation; an error shows in the conversation and the next message works.
"use strict";

// The response header in which the gateway names the vLLM endpoint that answered: the gateway's
// contract (services/gateway/contract.py, UPSTREAM_HEADER) owns the name; the browser test checks
// that the page shows what the gateway sent in it.
const UPSTREAM_HEADER = "x-qvllm-upstream";

// Token estimates for text not yet counted by the server (its usage figures correct them).
const CHARS_PER_TOKEN = 3;      // English is about 4 characters per token; 3 leaves room
const TOKENS_PER_MESSAGE = 8;   // a chat template's role markers and separators
const TOKENS_PER_REQUEST = 40;  // what a template adds once (default system prompt, answer prompt)
const CONTEXT_MARGIN = 0.9;     // fill at most 90 % of the room the answer leaves
const MAX_CONTEXT_RETRIES = 4;  // context-length errors answered by dropping one more turn
const RENDER_INTERVAL_MS = 50;  // Markdown re-render while streaming, at most this often

const $ = (id) => document.getElementById(id);
const md = window.markdownit ? window.markdownit({ html: false, linkify: false, breaks: true }) : null;
if (md) md.disable("image");

let model = null;         // {id, maxLen} from /v1/models
let turns = [];           // {role, content, tokens, el, state: "ok" | "dropped" | "failed"}
let correction = 1;       // measured prompt tokens / estimated, from the last answer's usage
let generation = 0;       // bumped by "new chat": a late answer of a forgotten chat is ignored
let controller = null;    // AbortController of the answer in progress
let notice = null;        // the "earlier messages are no longer sent" note

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim() || localStorage.getItem("qvllm-key") || "";
  if (key) { h["Authorization"] = "Bearer " + key; localStorage.setItem("qvllm-key", key); }
  return h;
}

async function loadModel() {
  try {
    const resp = await fetch("/v1/models", { headers: headers() });
    const entry = (await resp.json()).data[0];
    model = { id: entry.id, maxLen: Number(entry.max_model_len) || null };
    $("model").textContent = model.id;
    $("context").textContent = model.maxLen ? model.maxLen + " tokens" : "unknown";
  } catch (err) {
    $("model").textContent = "unavailable";
  }
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function addTurn(role, content) {
  const el = element("div", "msg " + role, content);
  $("log").appendChild(el);
  el.scrollIntoView({ block: "end" });
  const turn = { role, content, tokens: null, el, state: "ok" };
  turns.push(turn);
  return turn;
}

function renderMarkdown(el, text) {
  if (md) el.innerHTML = md.render(text);  // html: false: raw HTML in the text is escaped
  else el.textContent = text;
}

function answerTokens() {
  const wanted = Number($("maxtokens").value) || 200;
  return model && model.maxLen ? Math.max(1, Math.min(wanted, Math.floor(model.maxLen / 2))) : wanted;
}

function estimate(turn) {
  const tokens = turn.tokens !== null ? turn.tokens : Math.ceil(turn.content.length / CHARS_PER_TOKEN);
  return tokens + TOKENS_PER_MESSAGE;
}

function sent() { return turns.filter((t) => t.state === "ok"); }

function dropOldest() {
  const live = sent();
  if (live.length <= 1) return false;  // the newest message always goes
  live[0].state = "dropped";
  live[0].el.classList.add("dropped");
  if (live[1].role === "assistant" && live.length > 2) {  // a conversation starts with the user
    live[1].state = "dropped";
    live[1].el.classList.add("dropped");
  }
  showNotice();
  return true;
}

function fitContext() {
  if (!model || !model.maxLen) return true;
  const budget = Math.floor((model.maxLen - answerTokens()) * CONTEXT_MARGIN) - TOKENS_PER_REQUEST;
  const total = () => sent().reduce((sum, t) => sum + estimate(t), 0) * correction;
  while (total() > budget) {
    if (!dropOldest()) return false;
  }
  return true;
}

function showNotice() {
  const dropped = turns.filter((t) => t.state === "dropped").length;
  if (!notice) notice = element("div", "notice");
  notice.textContent = dropped + " earlier message" + (dropped === 1 ? " is" : "s are") +
    " no longer sent to the model: its context holds " + (model && model.maxLen ? model.maxLen : "a limited number of") +
    " tokens (New chat starts over).";
  const firstSent = sent()[0];
  if (firstSent) $("log").insertBefore(notice, firstSent.el);
}

function contextError(status, message) {
  return status === 400 && /context length|context window|too long|max_tokens/i.test(message);
}

async function errorMessage(resp) {
  let msg = resp.status + " " + resp.statusText;
  try { msg = (await resp.json()).error.message || msg; } catch (e) { /* not JSON */ }
  return msg;
}

// One streamed answer into `view`; resolves with its figures, rejects with an Error
// (err.contextOverflow when the server said the conversation does not fit).
async function stream(messages, view, gen) {
  controller = new AbortController();
  const start = performance.now();
  const resp = await fetch("/v1/chat/completions", {
    method: "POST", headers: headers(), signal: controller.signal,
    body: JSON.stringify({
      model: model.id, messages, stream: true, stream_options: { include_usage: true },
      max_tokens: answerTokens(),
    }),
  });
  const upstream = resp.headers.get(UPSTREAM_HEADER);
  if (!resp.ok) {
    const err = new Error(await errorMessage(resp));
    err.contextOverflow = contextError(resp.status, err.message);
    throw err;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "", text = "", chunks = 0, first = null, usage = null, rendered = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (gen !== generation) { controller.abort(); return null; }
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut); buf = buf.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;  // ": keep-alive" heartbeats are comments
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          if (first === null) first = performance.now();
          chunks += 1; text += delta.content;
          view.bubble.dataset.chunks = String(chunks);
          if (performance.now() - rendered >= RENDER_INTERVAL_MS) {
            renderMarkdown(view.bubble, text);
            rendered = performance.now();
          }
        }
      }
    }
  }
  renderMarkdown(view.bubble, text);
  const end = performance.now();
  const tokens = usage ? usage.completion_tokens : chunks;
  return {
    text, tokens, upstream, promptTokens: usage ? usage.prompt_tokens : null,
    ttftMs: first === null ? null : Math.round(first - start),
    tps: first !== null && end > first && tokens > 1 ? (tokens - 1) / ((end - first) / 1000) : null,
  };
}

function answerView() {
  const bubble = element("div", "msg assistant", "");
  bubble.dataset.chunks = "0";
  bubble.dataset.done = "false";
  const meta = element("div", "meta", "…");
  $("log").append(bubble, meta);
  bubble.scrollIntoView({ block: "end" });
  return { bubble, meta };
}

function showFigures(view, r) {
  const ttft = r.ttftMs === null ? "–" : r.ttftMs + " ms";
  const tps = r.tps === null ? "–" : r.tps.toFixed(1) + " tok/s";
  const parts = ["TTFT " + ttft, tps, r.tokens + " tokens"];
  if (r.upstream) parts.push("replica " + r.upstream);
  view.meta.textContent = parts.join(" · ");
  view.meta.dataset.ttftMs = r.ttftMs === null ? "" : String(r.ttftMs);
  view.meta.dataset.tokensPerS = r.tps === null ? "" : r.tps.toFixed(1);
  view.meta.dataset.upstream = r.upstream || "";
  $("ttft").textContent = ttft;
  $("tps").textContent = tps;
}

// Scale later estimates up when the server counted more prompt tokens than estimated (a long
// system prompt, a dense language); never down: the character estimate stays the floor.
function learn(messages, promptTokens) {
  if (!promptTokens) return;
  const estimated = messages.reduce((sum, m) => sum + estimate(m), 0) + TOKENS_PER_REQUEST;
  correction = Math.min(Math.max(promptTokens / estimated, 1), 4);
}

async function send(prompt) {
  const gen = generation;
  if (!model) await loadModel();
  const user = addTurn("user", prompt);
  const view = answerView();
  try {
    if (!model) throw new Error("the model list (/v1/models) is unavailable");
    for (let attempt = 0; ; attempt++) {
      if (!fitContext()) {
        throw new Error("this message alone is longer than the model's context (" + model.maxLen + " tokens)");
      }
      const live = sent();
      const messages = live.map((t) => ({ role: t.role, content: t.content }));
      let result;
      try {
        result = await stream(messages, view, gen);
      } catch (err) {
        if (err.contextOverflow && attempt < MAX_CONTEXT_RETRIES && dropOldest()) continue;
        throw err;
      }
      if (result === null || gen !== generation) return;  // "new chat" meanwhile
      learn(live, result.promptTokens);
      const answer = { role: "assistant", content: result.text, tokens: result.tokens, el: view.bubble, state: "ok" };
      turns.push(answer);
      showFigures(view, result);
      return;
    }
  } catch (err) {
    if (gen !== generation) return;
    user.state = "failed";
    user.el.classList.add("failed");
    view.bubble.classList.add("error");
    view.bubble.textContent = "Error: " + (err.name === "TypeError" ? "the gateway could not be reached (" + err.message + ")" : err.message);
    view.meta.textContent = "not answered; this message is not sent again";
  } finally {
    view.bubble.dataset.done = "true";
    if (gen === generation) controller = null;
  }
}

function newChat() {
  generation += 1;
  if (controller) controller.abort();
  controller = null;
  turns = [];
  notice = null;
  correction = 1;
  $("log").replaceChildren();
  $("ttft").textContent = "–"; $("tps").textContent = "–";
  $("send").disabled = false;
  $("prompt").focus();
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt) return;
  $("prompt").value = ""; $("send").disabled = true;
  const gen = generation;
  try { await send(prompt); } finally {
    if (gen === generation) { $("send").disabled = false; $("prompt").focus(); }
  }
});
$("prompt").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("form").requestSubmit(); }
});
$("newchat").addEventListener("click", newChat);
$("settingsform").addEventListener("submit", (ev) => ev.preventDefault());
loadModel();
