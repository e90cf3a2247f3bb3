// The admin console: keys, usage chart, channels, tasks, webhook deliveries. Everything goes
// through the admin API with the admin token (common.js: admin(), which refuses any other
// path).
import {
  $, ADMIN_TOKEN, admin, clearCredentials, copyText, el, say, setupTheme, show, store,
  stored, when,
} from "./common.js";
import { drawUsageChart } from "./chart.js";

const state = { keys: [], editing: null, tasksAfter: null, deliveriesAfter: null };
const RANGES = { "24h": [24, 3600], "7d": [7, 86400], "30d": [30, 86400] };

// ---------- sign in / out

async function signIn(token) {
  store(ADMIN_TOKEN, token);
  try {
    await loadKeys();
  } catch (err) {
    clearCredentials();
    throw err;
  }
  show($("#signin"), false);
  show($("#app"), true);
  show($("#sign-out"), true);
  loadUsage();
  loadChannels();
  loadTasks(true);
  loadDeliveries(true);
}

// ---------- keys

function models(text) {
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  return list.length ? list : null;
}

function intOrNull(text) {
  return text.trim() === "" ? null : Number(text);
}

async function loadKeys() {
  const list = await admin("/admin/keys");
  state.keys = list.data;
  $("#key-rows").replaceChildren(...list.data.map((k) => el("tr", { "data-key-id": k.id },
    el("td", {}, el("strong", {}, k.name), el("br"), el("code", { class: "hint" }, `${k.prefix}… ${k.id}`)),
    el("td", {}, k.status),
    el("td", { "data-testid": "key-balance-cell" }, k.balance === null ? "postpaid" : k.balance),
    el("td", {}, `${k.rpm ?? "—"} rpm, ${k.concurrency ?? "—"} at once`),
    el("td", {}, k.models ? k.models.join(", ") : "all"),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "ghost small", "data-testid": "edit-key", onclick: () => edit(k) }, "Edit / top up"),
      k.status === "active" ? el("button", {
        type: "button", class: "ghost small", "data-testid": "rotate-key", onclick: () => rotate(k),
      }, "Rotate") : null,
      k.status === "active" ? el("button", {
        type: "button", class: "danger small", "data-testid": "revoke-key", onclick: () => revoke(k),
      }, "Revoke") : null))));
}

function showNewKey(plaintext, note) {
  $("#new-key-value").value = plaintext;
  say($("#new-key-status"), note);
  show($("#new-key"), true);
  $("#new-key-value").select();
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: $("#key-name").value.trim() };
  const balance = $("#key-balance").value.trim();
  if (balance) body.balance = balance;
  const rpm = intOrNull($("#key-rpm").value);
  if (rpm !== null) body.rpm = rpm;
  const concurrency = intOrNull($("#key-concurrency").value);
  if (concurrency !== null) body.concurrency = concurrency;
  const allowed = models($("#key-models").value);
  if (allowed) body.models = allowed;
  try {
    const made = await admin("/admin/keys", { method: "POST", body });
    showNewKey(made.key, `Key "${made.name}" created (${made.id}).`);
    $("#create-form").reset();
    await loadKeys();
    say($("#keys-status"), "");
  } catch (err) {
    say($("#keys-status"), err.message, "error");
  }
}

async function rotate(k) {
  try {
    const made = await admin(`/admin/keys/${encodeURIComponent(k.id)}/rotate`, { method: "POST" });
    showNewKey(made.key, `Key "${k.name}" rotated: the old secret no longer works.`);
    await loadKeys();
  } catch (err) {
    say($("#keys-status"), err.message, "error");
  }
}

async function revoke(k) {
  try {
    await admin(`/admin/keys/${encodeURIComponent(k.id)}/revoke`, { method: "POST" });
    say($("#keys-status"), `Key "${k.name}" revoked.`);
    await loadKeys();
  } catch (err) {
    say($("#keys-status"), err.message, "error");
  }
}

function edit(k) {
  state.editing = k;
  $("#edit-title").textContent = `Edit key "${k.name}"`;
  $("#edit-rpm").value = k.rpm ?? "";
  $("#edit-concurrency").value = k.concurrency ?? "";
  $("#edit-models").value = k.models ? k.models.join(", ") : "";
  $("#topup-amount").value = "";
  show($("#edit-form"), true);
  $("#edit-rpm").focus();
}

async function saveLimits(event) {
  event.preventDefault();
  const k = state.editing;
  try {
    await admin(`/admin/keys/${encodeURIComponent(k.id)}`, {
      method: "PATCH",
      body: {
        rpm: intOrNull($("#edit-rpm").value),
        concurrency: intOrNull($("#edit-concurrency").value),
        models: models($("#edit-models").value),
      },
    });
    say($("#keys-status"), `Limits of "${k.name}" saved.`);
    await loadKeys();
  } catch (err) {
    say($("#keys-status"), err.message, "error");
  }
}

async function topUp() {
  const k = state.editing;
  try {
    const key = await admin(`/admin/keys/${encodeURIComponent(k.id)}/topup`, {
      method: "POST", body: { amount: $("#topup-amount").value.trim() },
    });
    say($("#keys-status"), `"${k.name}" topped up: balance ${key.balance}.`);
    $("#topup-amount").value = "";
    await loadKeys();
  } catch (err) {
    say($("#keys-status"), err.message, "error");
  }
}

// ---------- usage

async function loadUsage() {
  const [count, step] = RANGES[$("#usage-range").value];
  const now = Math.ceil(Date.now() / 1000 / step) * step;
  const start = now - count * step;
  const buckets = [];
  for (let i = 0; i < count; i += 1) buckets.push([start + i * step, start + (i + 1) * step]);
  try {
    // One report per bucket (the admin API reports totals over a range).
    const reports = await Promise.all(buckets.map(([a, b]) => admin(`/admin/usage?since=${a}&until=${b}`)));
    const total = await admin(`/admin/usage?since=${start}&until=${now}`);
    drawUsageChart($("#chart"), buckets, reports, $("#usage-metric").value, total.currency);
    $("#usage-rows").replaceChildren(...total.data.map((r) => el("tr", {},
      el("td", {}, r.key_name || r.key_id), el("td", {}, r.model || "—"), el("td", {}, r.tasks),
      el("td", { "data-testid": "usage-images" }, r.images), el("td", {}, `${r.spend} ${total.currency}`),
      el("td", {}, r.refunds))));
    if (!total.data.length) {
      $("#usage-rows").replaceChildren(el("tr", {}, el("td", { colspan: "6" }, "No usage in this range.")));
    }
  } catch (err) {
    $("#chart").replaceChildren(el("p", { class: "status", "data-kind": "error" }, err.message));
  }
}

// ---------- channels

async function loadChannels() {
  try {
    const channels = await admin("/admin/channels");
    say($("#channels-status"), channels.length ? "" : "No channels configured: the sandbox serves every model.");
    $("#channel-rows").replaceChildren(...channels.map((c) => el("tr", {},
      el("td", {}, el("strong", {}, c.name), el("br"), el("span", { class: "hint" }, `${c.adapter} · ${c.host}`)),
      el("td", {}, el("span", { class: `pill ${c.health}` }, c.health)),
      el("td", {}, c.breaker_retry_in ? `${c.breaker} (retry in ${c.breaker_retry_in} s)` : c.breaker),
      el("td", {}, `${c.in_flight}${c.concurrency ? ` / ${c.concurrency}` : ""}`),
      el("td", {}, `${(c.error_rate * 100).toFixed(1)}% of ${c.requests}`),
      el("td", {}, c.p50_seconds === null ? "—" : `${c.p50_seconds.toFixed(2)} s`),
      el("td", {}, c.last_error || "—"))));
  } catch (err) {
    say($("#channels-status"), err.message, "error");
  }
}

// ---------- tasks (GET /admin/tasks)

function epoch(input) {
  return input.value ? String(Math.floor(new Date(input.value).getTime() / 1000)) : null;
}

async function loadTasks(reset) {
  const line = $("#tasks-status-line");
  if (reset) state.tasksAfter = null;
  const query = new URLSearchParams({ limit: "20" });
  const filters = {
    status: $("#tasks-status").value, model: $("#tasks-model").value.trim(),
    key_id: $("#tasks-key").value.trim(), created_after: epoch($("#tasks-after")),
    created_before: epoch($("#tasks-before")), after: state.tasksAfter,
  };
  for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
  let page;
  try {
    page = await admin(`/admin/tasks?${query}`);
  } catch (err) {
    if (err.status === 404 || err.status === 405) {
      say(line, "The tasks browser is not available on this server (no GET /admin/tasks).", "warn");
      return;
    }
    say(line, err.message, "error");
    return;
  }
  const rows = page.data.map((t) => el("tr", { "data-task-id": t.id },
    el("td", {}, el("code", {}, t.id)), el("td", {}, t.status), el("td", {}, t.model),
    el("td", {}, when(t.created_at)), el("td", {}, t.error ? t.error.code || t.error.message : "")));
  if (reset) $("#task-rows").replaceChildren(...rows);
  else $("#task-rows").append(...rows);
  state.tasksAfter = page.last_id;
  show($("#tasks-more"), page.has_more);
  say(line, $("#task-rows").children.length ? "" : "No tasks match.");
}

// ---------- webhook deliveries

async function loadDeliveries(reset) {
  const line = $("#deliveries-status");
  if (reset) state.deliveriesAfter = null;
  const query = new URLSearchParams({ limit: "20" });
  const key = $("#deliveries-key").value.trim();
  if (key) query.set("key_id", key);
  if (state.deliveriesAfter) query.set("after", state.deliveriesAfter);
  try {
    const page = await admin(`/admin/webhooks/deliveries?${query}`);
    const rows = page.data.map((d) => el("tr", {},
      el("td", {}, el("code", {}, d.id)), el("td", {}, el("code", {}, d.task_id)),
      el("td", {}, d.event), el("td", {}, d.status), el("td", {}, d.attempts),
      el("td", {}, d.last_status_code ?? d.last_error ?? "—"),
      el("td", {}, d.status === "failed" ? el("button", {
        type: "button", class: "ghost small", "data-testid": "retry-delivery", onclick: () => retry(d),
      }, "Retry") : null)));
    if (reset) $("#delivery-rows").replaceChildren(...rows);
    else $("#delivery-rows").append(...rows);
    state.deliveriesAfter = page.last_id;
    show($("#deliveries-more"), page.has_more);
    say(line, $("#delivery-rows").children.length ? "" : "No webhook deliveries.");
  } catch (err) {
    say(line, err.message, "error");
  }
}

async function retry(d) {
  try {
    await admin(`/admin/webhooks/deliveries/${encodeURIComponent(d.id)}/retry`, { method: "POST" });
    say($("#deliveries-status"), `Delivery ${d.id} queued again.`);
    await loadDeliveries(true);
  } catch (err) {
    say($("#deliveries-status"), err.message, "error");
  }
}

// ---------- wiring

function setup() {
  setupTheme($("#theme"));
  $("#signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#admin-token");
    try {
      await signIn(input.value.trim());
      input.value = "";
    } catch (err) {
      say($("#signin-status"), err.status === 401 || err.status === 403
        ? "That admin token was not accepted." : err.message, "error");
    }
  });
  $("#sign-out").addEventListener("click", () => { clearCredentials(); location.reload(); });
  $("#create-form").addEventListener("submit", createKey);
  $("#copy-key").addEventListener("click", () => copyText($("#new-key-value").value, $("#new-key-status")));
  $("#hide-key").addEventListener("click", () => { $("#new-key-value").value = ""; show($("#new-key"), false); });
  $("#edit-form").addEventListener("submit", saveLimits);
  $("#topup").addEventListener("click", topUp);
  $("#edit-close").addEventListener("click", () => show($("#edit-form"), false));
  $("#usage-range").addEventListener("change", loadUsage);
  $("#usage-metric").addEventListener("change", loadUsage);
  $("#usage-refresh").addEventListener("click", () => { loadUsage(); loadKeys(); });
  $("#channels-refresh").addEventListener("click", loadChannels);
  $("#tasks-form").addEventListener("submit", (e) => { e.preventDefault(); loadTasks(true); });
  $("#tasks-more").addEventListener("click", () => loadTasks(false));
  $("#deliveries-refresh").addEventListener("click", () => loadDeliveries(true));
  $("#deliveries-more").addEventListener("click", () => loadDeliveries(false));
  if (stored(ADMIN_TOKEN)) signIn(stored(ADMIN_TOKEN)).catch(() => show($("#signin"), true));
}

setup();
