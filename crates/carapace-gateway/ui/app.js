// The carapace control page. No framework, no build step. Everything the model, a tool or a
// chat peer wrote is put into the page with textContent (never innerHTML).
"use strict";

const state = { csrf: "", session: "", chat: null, pending: [] };

// ---------- helpers ----------
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.append(typeof k === "string" || typeof k === "number" ? String(k) : k);
  }
  return e;
}
const $ = (id) => document.getElementById(id);
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

class ApiError extends Error {
  constructor(env) { super((env && env.message) || "request failed"); this.env = env || {}; }
}

async function api(path, body, raw) {
  const opts = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["x-csrf-token"] = state.csrf;
    if (raw) { opts.body = body.data; opts.headers["content-type"] = body.type || "application/octet-stream"; opts.headers["x-filename"] = encodeURIComponent(body.name); opts.headers["x-session"] = state.session; }
    else { opts.body = JSON.stringify(body); opts.headers["content-type"] = "application/json"; }
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { location.href = "/ui/login"; throw new ApiError({ message: "logged out" }); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok || j.ok === false) throw new ApiError(j.error || { message: r.statusText });
  return j;
}

function errorBox(env) {
  const box = el("div", { class: "error-box" },
    el("strong", { text: env.code || "ERROR" }), " ", el("span", { class: "err-msg", text: env.message || "" }));
  if (env.hint) box.append(el("div", { class: "hint", text: "hint: " + env.hint }));
  return box;
}
function flash(text, bad) {
  const f = $("flash");
  f.textContent = text; f.className = bad ? "flash bad" : "flash"; f.hidden = false;
  clearTimeout(flash.t); flash.t = setTimeout(() => { f.hidden = true; }, 6000);
}
function guard(fn) {
  return async (...a) => {
    try { await fn(...a); } catch (e) {
      if (e instanceof ApiError) flash((e.env.code ? e.env.code + ": " : "") + e.message + (e.env.hint ? " (hint: " + e.env.hint + ")" : ""), true);
      else flash(String(e), true);
    }
  };
}
function cell(v) { return el("td", { text: v === null || v === undefined ? "" : String(v) }); }

// ---------- navigation ----------
const loaders = {};
function show(view) {
  if (!loaders[view]) view = "chat";
  $("flash").hidden = true;
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
  for (const b of document.querySelectorAll("#nav button")) b.classList.toggle("active", b.dataset.view === view);
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  guard(loaders[view])();
}

// ---------- chat ----------
function bubble(role, text) {
  const m = el("div", { class: "msg " + role }, el("div", { class: "who", text: role === "user" ? "you" : "agent" }),
    el("div", { class: "text", text: text || "" }));
  $("messages").append(m);
  m.scrollIntoView({ block: "end" });
  return m;
}

function toolView(ev) {
  const args = ev.args === null || ev.args === undefined ? "" : JSON.stringify(ev.args, null, 1);
  return el("details", { class: "tool running", "data-id": ev.id },
    el("summary", {}, el("span", { class: "tool-name", text: ev.name }), " ", el("span", { class: "tool-status", text: "running…" })),
    el("pre", { class: "tool-args", text: args }));
}

function renderTranscript(events, into, asChat) {
  for (const e of events) {
    if (e.type === "user") {
      const t = (e.content || []).filter((p) => p.type === "text").map((p) => p.text).join("\n");
      into.append(asChat ? bubbleNode("user", t) : el("div", { class: "t-user" }, el("b", { text: "user: " }), t));
    } else if (e.type === "assistant") {
      if (e.text) into.append(asChat ? bubbleNode("agent", e.text) : el("div", { class: "t-agent" }, el("b", { text: e.provider + "/" + e.model + ": " }), e.text));
      for (const c of e.tool_calls || e.toolCalls || []) into.append(el("div", { class: "t-tool", text: "→ " + c.name + " " + JSON.stringify(c.arguments) }));
    } else if (e.type === "tool_result") {
      into.append(el("div", { class: "t-result " + (e.ok ? "ok" : "bad"), text: "← " + e.name + (e.ok ? " ok" : " error") + ": " + String(e.content).slice(0, 400) }));
    } else if (e.type === "turn_end" && e.error) {
      into.append(errorBox(e.error));
    }
  }
}
function bubbleNode(role, text) {
  return el("div", { class: "msg " + role }, el("div", { class: "who", text: role === "user" ? "you" : "agent" }), el("div", { class: "text", text }));
}

loaders.chat = async () => {
  $("chat-session").textContent = state.session;
  const c = state.chat;
  $("chat-model").textContent = c.available ? (c.model ? "model " + c.model : "") : "";
  $("chat-nomodel").hidden = c.available;
  $("chat-nomodel").textContent = "No model is configured, so the agent cannot answer yet: set " + c.setting + " in the config (and its provider under models.providers), then restart the gateway.";
  $("chat-send").disabled = !c.available;
  const box = $("messages");
  clear(box);
  try {
    const j = await api("/ui/api/sessions/show?key=" + encodeURIComponent(state.session));
    renderTranscript(j.session.events, box, true);
  } catch (e) { /* a new session has no transcript yet */ }
};

async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      if (line.trim()) onEvent(JSON.parse(line));
    }
    if (done) break;
  }
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("chat-input");
  const text = input.value;
  const files = Array.from($("chat-file").files);
  if (!text.trim() && !files.length) return;
  $("chat-send").disabled = true;
  try {
    const uploads = [];
    for (const f of files) {
      const u = await api("/ui/api/upload", { data: f, type: f.type, name: f.name }, true);
      uploads.push(u.id);
    }
    const mine = bubble("user", text);
    for (const f of files) mine.append(el("div", { class: "attached", text: "attached: " + f.name }));
    input.value = ""; $("chat-file").value = ""; $("chat-files").textContent = "";
    const reply = bubble("agent", "");
    reply.classList.add("streaming");
    const textNode = reply.querySelector(".text");
    const resp = await fetch("/ui/api/chat", {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": state.csrf },
      body: JSON.stringify({ session: state.session, text, uploads }),
    });
    if (!resp.ok) {
      const j = await resp.json().catch(() => ({}));
      reply.append(errorBox(j.error || { message: resp.statusText }));
      reply.classList.remove("streaming"); reply.dataset.done = "failed";
      return;
    }
    const tools = {};
    await readEvents(resp, (e) => {
      switch (e.type) {
        case "text": textNode.textContent += e.text; reply.dataset.deltas = String(Number(reply.dataset.deltas || 0) + 1); break;
        case "retry": textNode.textContent = ""; reply.append(el("div", { class: "muted", text: "retrying with " + e.next + " (" + e.code + ")" })); break;
        case "tool_started": { const t = toolView(e); tools[e.id] = t; reply.insertBefore(t, textNode); break; }
        case "tool_finished": {
          const t = tools[e.id] || toolView({ id: e.id, name: e.name, args: null });
          if (!t.parentNode) reply.insertBefore(t, textNode);
          t.classList.remove("running");
          const st = t.querySelector(".tool-status");
          if (e.outcome.status === "ok") { t.classList.add("ok"); st.textContent = "ok"; }
          else { t.classList.add("bad"); st.textContent = "error " + e.outcome.code; t.append(errorBox(e.outcome)); t.open = true; }
          break;
        }
        case "attachment":
          if (e.inline) reply.append(el("figure", { class: "attachment" }, el("img", { class: "attachment-image", src: e.url, alt: e.name }), el("figcaption", { text: e.name })));
          else reply.append(el("a", { class: "attachment-file", href: e.url, download: e.name, text: "download " + e.name + " (" + e.bytes + " bytes)" }));
          break;
        case "attachment_refused":
          reply.append(el("div", { class: "muted", text: "a file was not sent: " + e.path }), errorBox(e.error));
          break;
        case "done": textNode.textContent = e.text; reply.dataset.done = "ok"; break;
        case "failed": reply.append(errorBox(e.error)); reply.dataset.done = "failed"; break;
      }
      reply.scrollIntoView({ block: "end" });
    });
    reply.classList.remove("streaming");
  } finally {
    $("chat-send").disabled = !state.chat.available;
  }
}

async function newConversation() {
  await api("/ui/api/sessions/reset", { key: state.session });
  flash("Started a new conversation.");
  await loaders.chat();
}

// ---------- sessions ----------
loaders.sessions = async () => {
  const j = await api("/ui/api/sessions");
  const body = $("sessions-body");
  clear(body);
  if (!j.sessions.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "no sessions yet" })));
  for (const s of j.sessions) {
    const actions = el("td", { class: "actions" },
      el("button", { class: "quiet", onclick: guard(() => showTranscript(s.sessionKey)), text: "Transcript" }),
      s.channel === "web" ? el("button", { class: "quiet", onclick: () => { state.session = s.sessionKey; show("chat"); }, text: "Open in chat" }) : null,
      el("button", { class: "danger", "data-reset": s.sessionKey, onclick: guard(async () => {
        if (!confirm("Reset " + s.sessionKey + "? Its transcript stays on disk; the next message starts fresh.")) return;
        await api("/ui/api/sessions/reset", { key: s.sessionKey });
        flash("Reset " + s.sessionKey);
        await loaders.sessions();
      }), text: "Reset" }));
    body.append(el("tr", { "data-key": s.sessionKey }, el("td", {}, el("code", { text: s.sessionKey })), cell(s.channel), cell(s.peer),
      cell(s.updatedAt), cell(s.turns), cell(s.model), actions));
  }
};
async function showTranscript(key) {
  const j = await api("/ui/api/sessions/show?key=" + encodeURIComponent(key));
  $("transcript").hidden = false;
  $("transcript-key").textContent = key;
  const b = $("transcript-body");
  clear(b);
  renderTranscript(j.session.events, b, false);
  if (!j.session.events.length) b.append(el("p", { class: "muted", text: "(empty)" }));
}

// ---------- sandboxes ----------
loaders.sandboxes = async () => {
  const j = await api("/ui/api/sandboxes");
  const b = j.backend;
  $("sbx-backend").textContent = "Backend: " + (b.available ? b.selected + " — available (" + b.detail + ")" : b.configured + " — UNAVAILABLE: " + b.detail + (b.hint ? " (hint: " + b.hint + ")" : ""));
  const body = $("sbx-dirs");
  clear(body);
  if (!j.sandboxes.length) body.append(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "no sandbox directories yet" })));
  for (const d of j.sandboxes) body.append(el("tr", {}, cell(d.slug), el("td", {}, el("code", { text: d.path })), cell(d.scopeKey || d.scope_key)));
  const c = $("sbx-containers");
  clear(c);
  if (Array.isArray(j.containers)) {
    c.append(el("h3", { text: "Docker containers" }));
    if (!j.containers.length) c.append(el("p", { class: "muted", text: "(none)" }));
    for (const k of j.containers) c.append(el("div", { text: k.name + "  " + (k.running ? "running" : k.state) + "  image " + k.image + "  scope " + k.scopeKey }));
  } else if (j.containers && j.containers.error) c.append(errorBox(j.containers.error));
  await explain();
};
async function explain(ev) {
  if (ev) ev.preventDefault();
  const key = $("sbx-session").value.trim();
  const j = await api("/ui/api/sandboxes/explain" + (key ? "?session=" + encodeURIComponent(key) : ""));
  const e = j.effective, out = $("sbx-explain");
  clear(out);
  const dl = el("dl", { class: "facts" });
  const fact = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v }));
  fact("session", e.sessionKey); fact("agent", e.agentId);
  fact("mode", j.why.mode);
  fact("sandboxed", e.sandboxed ? "yes" : "NO — exec runs on the host, unsandboxed");
  fact("workspaceAccess", j.why.workspaceAccess); fact("scope", j.why.scope);
  fact("workspaceRoot", j.why.workspaceRoot); fact("agentWorkspace", j.why.agentWorkspace);
  fact("backend", j.backendKind); if (j.user) fact("user", j.user);
  if (j.container) fact("container", j.container);
  out.append(dl);
  const t = el("table", { class: "grid mounts" }, el("thead", {}, el("tr", {}, el("th", { text: "In the sandbox" }), el("th", { text: "Host path" }), el("th", { text: "Access" }), el("th", { text: "Kind" }))));
  const tb = el("tbody");
  for (const m of j.mounts) tb.append(el("tr", {}, el("td", {}, el("code", { text: m.containerPath })), el("td", {}, el("code", { text: m.hostPath })), el("td", { class: "access-" + m.access, text: m.access }), cell(m.kind)));
  t.append(tb); out.append(el("h4", { text: "Mounts" }), t);
  out.append(el("h4", { text: "Limits" }), el("ul", {}, ...j.limits.map((l) => el("li", { text: l }))));
}
async function recreate() {
  const key = $("sbx-session").value.trim();
  const j = await api("/ui/api/sandboxes/recreate", { session: key || null });
  flash(j.backend === "docker" ? "removed: " + (j.removed.join(", ") || "nothing") + (j.skipped.length ? "; skipped: " + j.skipped.map((s) => s.join(" ")).join(", ") : "") : j.scopeKey + ": " + j.note);
}

// ---------- channels ----------
loaders.channels = async () => {
  const j = await api("/ui/api/channels");
  const body = $("channels-body");
  clear(body);
  for (const c of j.channels) {
    const n = c.counters;
    body.append(el("tr", {}, cell(c.channel), cell(c.connection), cell(c.lastMessageAt),
      el("td", { class: c.lastError ? "bad" : "", text: c.lastError ? c.lastError + (c.lastErrorAt ? " (" + c.lastErrorAt + ")" : "") : "" }),
      cell(n ? "received " + n.received + ", answered " + n.answered + ", failed " + n.failed : "")));
  }
  const pb = $("pairing-body");
  clear(pb);
  if (!j.pairing.length) pb.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "no pending pairing requests" })));
  for (const r of j.pairing) {
    const decide = (what) => guard(async () => {
      await api("/ui/api/pairing/" + what, { channel: r.channel, code: r.code });
      flash((what === "approve" ? "Approved " : "Rejected ") + r.id + " on " + r.channel);
      await loaders.channels();
    });
    pb.append(el("tr", { "data-code": r.code }, cell(r.channel), el("td", {}, el("code", { text: r.code })), cell(r.id), cell((r.meta || {}).name), cell(r.createdAt),
      el("td", { class: "actions" }, el("button", { "data-approve": r.code, onclick: decide("approve"), text: "Approve" }), el("button", { class: "quiet", onclick: decide("reject"), text: "Reject" }))));
  }
};

// ---------- doctor ----------
function renderDoctor(j) {
  $("doctor-summary").textContent = j.findings.length + " file(s) an outbound send would refuse, " + j.fixed + " fixed now, " + j.scanned + " entries scanned in " + j.roots.length + " root(s)" + (j.complete ? "" : " — the scan is INCOMPLETE (see below)");
  const body = $("doctor-body");
  clear(body);
  for (const f of j.findings) {
    const act = el("td", { class: "actions" });
    if (f.fixedMode) act.append(el("span", { class: "ok", text: "fixed: now " + f.fixedMode }));
    else if (f.fixable) act.append(el("button", { onclick: guard(async () => renderDoctor(await api("/ui/api/doctor/fix", { path: f.path }))), text: "Fix" }));
    else if (f.notFixed) act.append(el("span", { class: "muted", text: f.notFixed }));
    body.append(el("tr", {}, el("td", {}, el("code", { text: f.path })), cell(f.root), cell(f.mode), cell(f.code), cell(f.reason), act));
  }
  if (!j.findings.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "ok", text: "nothing to fix: every file can be sent" })));
  const s = $("doctor-stopped");
  clear(s);
  for (const x of j.stopped) s.append(el("div", { class: "warn", text: "not scanned: [" + x.root + "] " + x.path + ": " + x.reason }));
}
loaders.doctor = async () => renderDoctor(await api("/ui/api/doctor"));

// ---------- audit ----------
loaders.audit = async (ev) => {
  if (ev && ev.preventDefault) ev.preventDefault();
  const q = new URLSearchParams();
  if ($("audit-session").value.trim()) q.set("session", $("audit-session").value.trim());
  if ($("audit-tool").value) q.set("tool", $("audit-tool").value);
  const j = await api("/ui/api/audit?" + q);
  const sel = $("audit-tool"), cur = sel.value;
  clear(sel);
  sel.append(el("option", { value: "", text: "every tool" }));
  for (const t of j.tools) sel.append(el("option", { value: t, text: t }));
  sel.value = cur;
  const body = $("audit-body");
  clear(body);
  if (!j.records.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "no audit records match" })));
  for (const r of j.records) {
    body.append(el("tr", {}, cell(r.time), cell(r.tool), cell(r.action), cell(r.session), cell(r.command || (r.paths || []).join(" ") || r.destination),
      el("td", { class: r.outcome === "ok" ? "ok" : "bad", text: r.outcome + (r.errorCode ? " " + r.errorCode : "") })));
  }
};

// ---------- start ----------
document.addEventListener("DOMContentLoaded", guard(async () => {
  const me = await api("/ui/api/me");
  state.csrf = me.csrf;
  state.chat = me.chat;
  state.session = me.defaultSession;
  for (const b of document.querySelectorAll("#nav button")) b.addEventListener("click", () => show(b.dataset.view));
  $("chat-form").addEventListener("submit", guard(sendChat));
  $("chat-input").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("chat-form").requestSubmit(); } });
  $("chat-file").addEventListener("change", () => { $("chat-files").textContent = Array.from($("chat-file").files).map((f) => f.name).join(", "); });
  $("chat-new").addEventListener("click", guard(newConversation));
  $("sbx-form").addEventListener("submit", guard(explain));
  $("sbx-recreate").addEventListener("click", guard(recreate));
  $("doctor-fix-all").addEventListener("click", guard(async () => renderDoctor(await api("/ui/api/doctor/fix", {}))));
  $("doctor-rescan").addEventListener("click", guard(loaders.doctor));
  $("audit-form").addEventListener("submit", guard(loaders.audit));
  $("logout").addEventListener("click", guard(async () => { await api("/ui/logout", {}); location.href = "/ui/login"; }));
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  document.body.dataset.ready = "1";
  show(location.hash.slice(1) || "chat");
}));
