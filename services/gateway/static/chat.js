// qvllm chat page: streams /v1/chat/completions (SSE) and shows TTFT and tokens/s.
"use strict";
const $ = (id) => document.getElementById(id);
const history = [];
let modelId = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim() || localStorage.getItem("qvllm-key") || "";
  if (key) { h["Authorization"] = "Bearer " + key; localStorage.setItem("qvllm-key", key); }
  return h;
}

async function loadModel() {
  try {
    const resp = await fetch("/v1/models", { headers: headers() });
    const body = await resp.json();
    modelId = body.data[0].id;
    $("model").textContent = modelId;
  } catch (err) {
    $("model").textContent = "unavailable";
  }
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("log").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

async function send(prompt) {
  if (!modelId) await loadModel();
  history.push({ role: "user", content: prompt });
  bubble("user", prompt);
  const out = bubble("assistant", "");
  out.dataset.chunks = "0";
  out.dataset.done = "false";
  $("ttft").textContent = "…"; $("tps").textContent = "…";
  const start = performance.now();
  let first = null, tokens = 0, usageTokens = null, text = "";
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(),
      body: JSON.stringify({
        model: modelId, messages: history, stream: true,
        stream_options: { include_usage: true },
        max_tokens: Number($("maxtokens").value) || 200,
      }),
    });
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { msg = (await resp.json()).error.message; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
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
          if (chunk.usage) usageTokens = chunk.usage.completion_tokens;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            if (first === null) {
              first = performance.now();
              $("ttft").textContent = Math.round(first - start) + " ms";
            }
            tokens += 1; text += delta.content;
            out.textContent = text;
            out.dataset.chunks = String(tokens);
          }
        }
      }
      if (first !== null) {
        const secs = (performance.now() - first) / 1000;
        if (secs > 0) $("tps").textContent = (tokens / secs).toFixed(1) + " tok/s";
      }
    }
    const n = usageTokens !== null ? usageTokens : tokens;
    if (first !== null) {
      const secs = (performance.now() - first) / 1000;
      $("tps").textContent = (secs > 0 ? (Math.max(n - 1, 0) / secs).toFixed(1) : "–") + " tok/s";
    } else {
      $("ttft").textContent = "–"; $("tps").textContent = "–";
    }
    history.push({ role: "assistant", content: text });
  } catch (err) {
    out.classList.add("error");
    out.textContent = "Error: " + err.message;
    history.pop();
  } finally {
    out.dataset.done = "true";
  }
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt) return;
  $("prompt").value = ""; $("send").disabled = true;
  try { await send(prompt); } finally { $("send").disabled = false; $("prompt").focus(); }
});
$("prompt").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("form").requestSubmit(); }
});
loadModel();
