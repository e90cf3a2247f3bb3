// The playground: sign in with an API key, make images, follow the task, browse history.
import {
  $, API_KEY, ApiError, api, clearCredentials, copyText, el, readEvents, say, setupTheme,
  show, store, stored, when,
} from "./common.js";
import { MaskPainter } from "./mask.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 1000;
const HISTORY_PAGE = 10;

const state = {
  models: new Map(),
  refs: [], // {src: data URL or https URL, label}
  task: null, // the task being followed
  follow: null, // AbortController of the current follow
  historyAfter: null,
};

// ---------- sign in / out

async function signIn(key) {
  store(API_KEY, key);
  try {
    await loadModels();
  } catch (err) {
    clearCredentials();
    throw err;
  }
  show($("#signin"), false);
  show($("#app"), true);
  show($("#sign-out"), true);
  refreshUsage();
  refreshHistory(true);
}

function signOut() {
  state.follow?.abort();
  clearCredentials();
  location.reload();
}

// ---------- models and the size picker

async function loadModels() {
  const list = await api("/v1/models");
  state.models.clear();
  const select = $("#model");
  select.replaceChildren();
  for (const m of list.data) {
    state.models.set(m.id, m);
    select.append(el("option", { value: m.id }, m.id));
  }
  modelChanged();
}

function currentModel() {
  return state.models.get($("#model").value);
}

function fill(select, values, keep) {
  const previous = keep ? select.value : null;
  select.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  if (previous && values.includes(previous)) select.value = previous;
}

function modelChanged() {
  const model = currentModel();
  if (!model) return;
  const caps = model.capabilities;
  const flexible = caps.size_rule === "flexible";
  if (flexible) {
    fill($("#ratio"), Object.keys(caps.ratio_sizes || {}), true);
    fill($("#tier"), Object.keys(caps.n_max), true);
  } else {
    fill($("#ratio"), caps.sizes || [], true);
    fill($("#tier"), ["1k"], false);
  }
  $("#ratio").previousElementSibling.textContent = flexible ? "Ratio" : "Size";
  $("#tier").disabled = !flexible;
  fill($("#format"), caps.output_formats, true);
  fill($("#quality"), caps.qualities, true);
  $("#background").querySelector('[value="transparent"]').disabled = !caps.transparent_background;
  if (!caps.transparent_background && $("#background").value === "transparent") {
    $("#background").value = "auto";
  }
  const limits = Object.entries(caps.n_max).map(([t, n]) => `${t}: up to ${n}`).join(", ");
  const price = caps.pricing ? Object.entries(caps.pricing.per_image)
    .map(([t, p]) => `${t} ${p}`).join(", ") : null;
  say($("#model-limits"), [
    `n per tier — ${limits}.`,
    `Prompt up to ${caps.max_prompt_chars} characters.`,
    price ? `Price per image: ${price}.` : null,
    caps.edits ? null : "No edits.",
  ].filter(Boolean).join(" "));
  say($("#ref-limits"), caps.max_reference_images
    ? `Up to ${caps.max_reference_images} images (PNG, JPEG or WebP, 20 MiB each by default); `
      + "a mask needs at least one."
    : `${model.id} takes no reference images.`);
  sizeChanged();
}

function sizeMode() {
  return document.querySelector('input[name="size-mode"]:checked').value;
}

// {size, resolution, pixels} of the picker, or {error}.
function pickedSize() {
  const caps = currentModel()?.capabilities;
  if (!caps) return { error: "no model" };
  if (sizeMode() === "wxh") {
    const m = /^\s*(\d+)\s*[xX×]\s*(\d+)\s*$/.exec($("#wxh").value);
    if (!m) return { error: "Write the size as WxH, e.g. 1536x1024" };
    return { size: `${m[1]}x${m[2]}`, pixels: `${m[1]}×${m[2]}` };
  }
  if (caps.size_rule !== "flexible") {
    const size = $("#ratio").value;
    return { size, pixels: size.replace("x", "×") };
  }
  const ratio = $("#ratio").value;
  const tier = $("#tier").value;
  const wxh = caps.ratio_sizes?.[ratio]?.[tier];
  return { size: ratio, resolution: tier, pixels: wxh ? wxh.replace("x", "×") : "—" };
}

function sizeChanged() {
  const wxh = sizeMode() === "wxh";
  show($("#ratio-row"), !wxh);
  show($("#wxh-row"), wxh);
  const picked = pickedSize();
  $("#resolved").textContent = picked.error ? picked.error : picked.pixels;
  const caps = currentModel()?.capabilities;
  if (caps) {
    const tier = picked.resolution || "1k";
    $("#n").max = String(caps.n_max[tier] || 1);
  }
}

// ---------- reference images and the mask

const painter = new MaskPainter($("#mask-canvas"), $("#mask-base"), $("#brush"));

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) continue;
    addReference(await readFile(file), file.name || "pasted image");
  }
}

function addReference(src, label) {
  const max = currentModel()?.capabilities.max_reference_images ?? 0;
  if (state.refs.length >= max) {
    say($("#create-status"), `This model takes at most ${max} reference images.`, "error");
    return;
  }
  state.refs.push({ src, label });
  renderRefs();
}

function renderRefs() {
  const list = $("#refs");
  list.replaceChildren(...state.refs.map((ref, i) => el("li", {},
    // A linked image is fetched by the server (through its SSRF guard), never by the page:
    // the page loads nothing from another origin.
    ref.src.startsWith("data:")
      ? el("img", { src: ref.src, alt: `Reference ${i + 1}: ${ref.label}`, "data-testid": "reference-image" })
      : el("span", { class: "link-ref", "data-testid": "reference-link" }, "linked image"),
    el("span", {}, ref.label),
    i === 0 && ref.src.startsWith("data:") ? el("button", {
      type: "button", class: "ghost", "data-testid": "paint-mask",
      onclick: () => openMask(ref.src),
    }, painter.painted ? "Edit mask" : "Paint mask") : null,
    el("button", {
      type: "button", class: "ghost", "aria-label": `Remove reference ${i + 1}`,
      onclick: () => {
        state.refs.splice(i, 1);
        if (i === 0) { painter.painted = false; show($("#mask-editor"), false); }
        renderRefs();
      },
    }, "Remove"))));
  say($("#generate"), state.refs.length ? (painter.painted ? "Edit" : "Generate from references") : "Generate");
}

async function openMask(src) {
  show($("#mask-editor"), true);
  if (painter.image.src !== src) await painter.open(src);
  $("#mask-canvas").focus();
}

// ---------- create and follow

function requestBody() {
  const model = currentModel();
  const caps = model.capabilities;
  const picked = pickedSize();
  if (picked.error) throw new ApiError(400, { error: { message: picked.error, param: "size" } });
  const body = {
    model: model.id,
    prompt: $("#prompt").value,
    n: Number($("#n").value) || 1,
    size: picked.size,
    output_format: $("#format").value,
    quality: $("#quality").value,
    background: $("#background").value,
  };
  if (picked.resolution) body.resolution = picked.resolution;
  // Previews while it runs: only models that stream make partial images.
  if (caps.streaming && body.n === 1) body.partial_images = 2;
  if (state.refs.length) body.image_urls = state.refs.map((r) => r.src);
  const mask = painter.toDataURL();
  if (mask && state.refs.length) body.mask_url = mask;
  return { body, edit: Boolean(mask && state.refs.length) };
}

async function create(event) {
  event.preventDefault();
  const status = $("#create-status");
  let built;
  try {
    built = requestBody();
  } catch (err) {
    say(status, err.message, "error");
    return;
  }
  const path = built.edit ? "/v1/images/edits" : "/v1/images/generations";
  $("#generate").disabled = true;
  say(status, "Submitting…");
  try {
    const task = await api(path, { method: "POST", body: built.body, headers: { Prefer: "respond-async" } });
    say(status, `Task ${task.task_id} accepted.`);
    follow(task.task_id);
  } catch (err) {
    say(status, err.param ? `${err.message} (${err.param})` : err.message, "error");
  } finally {
    $("#generate").disabled = false;
  }
}

function showTask(task) {
  state.task = task;
  show($("#current"), true);
  $("#current-id").textContent = task.id;
  $("#current-status").textContent = task.status;
  $("#progress").value = task.progress ?? 0;
  $("#progress").setAttribute("aria-valuetext", `${task.progress ?? 0}%`);
  const pos = task.queue_position;
  $("#queue").textContent = task.status === "queued" && pos !== null && pos !== undefined
    ? `· ${pos} ahead in the queue` : "";
  const eta = task.estimated_seconds;
  if (eta && !TERMINAL.has(task.status)) $("#queue").textContent += ` · about ${Math.round(eta)} s`;
  show($("#cancel"), !TERMINAL.has(task.status));
  if (TERMINAL.has(task.status)) finished(task);
}

function showPartial(data) {
  const src = `data:image/${data.output_format || "png"};base64,${data.b64_json}`;
  $("#partials").replaceChildren(el("img", {
    src, alt: `Preview ${data.partial_image_index + 1}`, "data-testid": "partial-image",
  }));
}

function finished(task) {
  state.follow?.abort();
  state.follow = null;
  const status = $("#results-status");
  if (task.status === "succeeded") {
    say(status, `Task ${task.id} succeeded.`);
    renderResults(task);
  } else if (task.status === "failed") {
    say(status, `Task ${task.id} failed: ${task.error?.message || "unknown error"}`, "error");
  } else {
    say(status, `Task ${task.id} was cancelled${task.error?.code ? ` (${task.error.code})` : ""}.`, "warn");
  }
  refreshUsage();
  refreshHistory(true);
}

function renderResults(task) {
  const gallery = $("#results");
  const format = task.result.output_format || "png";
  for (const [i, item] of task.result.data.entries()) {
    const src = item.url || `data:image/${format};base64,${item.b64_json}`;
    const img = el("img", { src, alt: `${task.id} image ${i + 1}`, "data-testid": "result-image" });
    const note = el("span", { class: "hint", role: "status" });
    const caption = el("figcaption", {},
      el("span", { class: "hint" }, task.result.size || ""),
      el("a", { href: src, download: `${task.id}-${i}.${format}`, class: "button ghost" }, "Download"),
      el("button", { type: "button", class: "ghost", onclick: () => copyText(src, note) }, "Copy URL"),
      el("button", {
        type: "button", class: "ghost", "data-testid": "use-as-reference",
        onclick: () => useAsReference(src, `${task.id} #${i + 1}`, note),
      }, "Use as reference"),
      note);
    gallery.prepend(el("figure", {}, img, caption));
  }
}

async function useAsReference(src, label, note) {
  // As a data: URL so the request does not depend on the link's expiry.
  try {
    const blob = await (await fetch(src, { credentials: "omit" })).blob();
    addReference(await readFile(blob), label);
    say(note, "Added to the reference images.");
  } catch {
    say(note, "The image could not be read.", "error");
  }
}

function follow(taskId) {
  state.follow?.abort();
  const controller = new AbortController();
  state.follow = controller;
  $("#partials").replaceChildren();
  showTask({ id: taskId, status: "queued", progress: 0 });
  followEvents(taskId, controller).catch(() => poll(taskId, controller));
}

// Follows /v1/tasks/{id}/events; resumes once with Last-Event-ID if the stream breaks
// before the end; throws (→ polling) when the server has no event stream for it.
async function followEvents(taskId, controller) {
  let lastId = null;
  for (let attempt = 0; attempt < 3 && !controller.signal.aborted; attempt += 1) {
    const headers = { Accept: "text/event-stream" };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const response = await api(`/v1/tasks/${encodeURIComponent(taskId)}/events`, { headers, raw: true });
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.startsWith("text/event-stream")) {
      throw new Error(`no event stream (${response.status})`);
    }
    say($("#follow-mode"), "Following the task's event stream.");
    let ended = false;
    await readEvents(response, (ev) => {
      if (ev.id !== null) lastId = ev.id;
      const data = JSON.parse(ev.data);
      if (ev.event === "task.partial_image") showPartial(data);
      else if (data.task) {
        if (ev.event === "task.progress" && typeof data.progress === "number") data.task.progress = data.progress;
        showTask(data.task);
      }
      if (["task.succeeded", "task.failed", "task.cancelled"].includes(ev.event)) ended = true;
    }, controller.signal);
    if (ended || controller.signal.aborted) return;
  }
  throw new Error("event stream kept breaking");
}

async function poll(taskId, controller) {
  say($("#follow-mode"), "Polling the task every second (no event stream).");
  while (!controller.signal.aborted) {
    try {
      const task = await api(`/v1/tasks/${encodeURIComponent(taskId)}`);
      if (controller.signal.aborted) return;
      showTask(task);
      if (TERMINAL.has(task.status)) return;
    } catch (err) {
      say($("#results-status"), err.message, "error");
      if (err.status === 404 || err.status === 401) return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function cancel(taskId) {
  try {
    const task = await api(`/v1/tasks/${encodeURIComponent(taskId)}/cancel`, { method: "POST" });
    if (state.task && state.task.id === task.id) showTask(task);
    refreshHistory(true);
  } catch (err) {
    say($("#history-status"), err.message, "error");
  }
}

// ---------- history, balance

async function refreshHistory(reset) {
  const status = $("#history-status");
  const rows = $("#history-rows");
  if (reset) state.historyAfter = null;
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (state.historyAfter) query.set("after", state.historyAfter);
  let page;
  try {
    page = await api(`/v1/tasks?${query}`);
  } catch (err) {
    if (err.status === 404 || err.status === 405) {
      say(status, "Task history is not available on this server.", "warn");
      rows.replaceChildren();
      show($("#history-more"), false);
      return;
    }
    say(status, err.message, "error");
    return;
  }
  const made = page.data.map((t) => el("tr", { "data-task-id": t.id },
    el("td", {}, el("code", {}, t.id)),
    el("td", { "data-testid": "history-status" }, t.status),
    el("td", {}, t.model),
    el("td", {}, when(t.created_at)),
    el("td", {}, TERMINAL.has(t.status) ? null : el("button", {
      type: "button", class: "danger small", "data-testid": "history-cancel",
      onclick: () => cancel(t.id),
    }, "Cancel"))));
  if (reset) rows.replaceChildren(...made);
  else rows.append(...made);
  state.historyAfter = page.last_id;
  show($("#history-more"), page.has_more);
  say(status, rows.children.length ? "" : "No tasks yet.");
}

async function refreshUsage() {
  const dl = $("#usage");
  try {
    const u = await api("/v1/usage");
    const pairs = [
      ["Key", u.name || u.key_id],
      ["Balance", u.balance === null ? "postpaid" : `${u.balance} ${u.currency}`],
      ["Spent", `${u.spend} ${u.currency}`],
      ["Tasks", u.tasks],
      ["Images", u.images],
      ["Refunds", `${u.refunds} ${u.currency}`],
    ];
    dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-testid": `usage-${k.toLowerCase()}` }, v)]));
  } catch (err) {
    dl.replaceChildren(el("dd", {}, err.message));
  }
}

// ---------- wiring

function setup() {
  setupTheme($("#theme"));
  $("#signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#api-key");
    try {
      await signIn(input.value.trim());
      input.value = "";
    } catch (err) {
      say($("#signin-status"), err.status === 401 ? "That key was not accepted." : err.message, "error");
    }
  });
  $("#sign-out").addEventListener("click", signOut);
  $("#model").addEventListener("change", modelChanged);
  for (const id of ["#ratio", "#tier", "#wxh"]) $(id).addEventListener("input", sizeChanged);
  for (const radio of document.querySelectorAll('input[name="size-mode"]')) radio.addEventListener("change", sizeChanged);
  $("#create-form").addEventListener("submit", create);
  $("#cancel").addEventListener("click", () => state.task && cancel(state.task.id));
  $("#history-refresh").addEventListener("click", () => refreshHistory(true));
  $("#history-more").addEventListener("click", () => refreshHistory(false));
  $("#usage-refresh").addEventListener("click", refreshUsage);
  $("#ref-file").addEventListener("change", (e) => addFiles(e.target.files));
  $("#ref-add").addEventListener("click", () => {
    const url = $("#ref-url").value.trim();
    if (/^https?:\/\//.test(url)) { addReference(url, url); $("#ref-url").value = ""; }
    else say($("#create-status"), "An image URL starts with http:// or https://", "error");
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length && !$("#app").hidden) addFiles(files);
  });
  $("#mask-clear").addEventListener("click", () => { painter.clear(); renderRefs(); });
  $("#mask-done").addEventListener("click", () => { show($("#mask-editor"), false); renderRefs(); });
  $("#mask-canvas").addEventListener("pointerup", renderRefs);
  if (stored(API_KEY)) {
    signIn(stored(API_KEY)).catch(() => show($("#signin"), true));
  }
}

setup();
