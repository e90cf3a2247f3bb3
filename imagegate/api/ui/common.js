// Shared by the playground and the admin console: credentials in sessionStorage, the two
// fetch helpers (each sends its credential only where it belongs), a tiny element builder,
// the theme toggle, and a Server-Sent Events reader.
//
// The API key and the admin token live in sessionStorage only (gone when the tab closes),
// are never put in a URL and never written to the console.

export const API_KEY = "imagegate.apiKey";
export const ADMIN_TOKEN = "imagegate.adminToken";
const THEME = "imagegate.theme";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.param = err.param || null;
  }
}

export function stored(name) {
  return sessionStorage.getItem(name);
}

export function store(name, value) {
  sessionStorage.setItem(name, value);
}

export function clearCredentials() {
  // Sign-out forgets both credentials and anything else the UI kept for this tab.
  sessionStorage.clear();
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// `/v1/...` with the API key. Never used for /admin.
export async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  if (!path.startsWith("/v1/")) throw new Error("api() is for /v1 routes only");
  const key = stored(API_KEY);
  const init = { method, headers: { ...headers }, credentials: "omit", cache: "no-store" };
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  return raw ? response : parse(response);
}

// `/admin/...` with the admin token: the only function that ever sends it.
export async function admin(path, { method = "GET", body } = {}) {
  if (!path.startsWith("/admin/")) throw new Error("admin() is for /admin routes only");
  const init = {
    method,
    headers: { Authorization: `Bearer ${stored(ADMIN_TOKEN) || ""}` },
    credentials: "omit",
    cache: "no-store",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return parse(await fetch(path, init));
}

// el("button", {class: "x", onclick: f, "data-testid": "t"}, "text", child...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function show(node, visible) {
  node.hidden = !visible;
}

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toLocaleString();
}

// Messages for the status line of a section (role="status" so screen readers hear them).
export function say(node, text, kind = "info") {
  node.textContent = text;
  node.dataset.kind = kind;
}

export function setupTheme(button) {
  const apply = (theme) => {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    button.setAttribute("aria-pressed", String(dark));
    button.textContent = dark ? "Light theme" : "Dark theme";
  };
  // The choice is a display preference, not a credential: localStorage keeps it across tabs.
  apply(localStorage.getItem(THEME));
  button.addEventListener("click", () => {
    const dark = button.getAttribute("aria-pressed") === "true";
    const next = dark ? "light" : "dark";
    localStorage.setItem(THEME, next);
    apply(next);
  });
}

export async function copyText(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    say(status, "Copied to the clipboard.");
  } catch {
    // Clipboard access can be refused (no permission, not a secure context): let the
    // person copy by hand from the selected field instead.
    say(status, "Copy was refused by the browser; select the text and copy it.", "warn");
  }
}

// Reads a text/event-stream body: calls onEvent({id, event, data}) for each event.
// Comment lines (keep-alives) are skipped. Resolves when the body ends.
export async function readEvents(response, onEvent, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let current = { id: null, event: "message", data: [] };
  const dispatch = () => {
    if (current.data.length) {
      onEvent({ id: current.id, event: current.event, data: current.data.join("\n") });
    }
    current = { id: null, event: "message", data: [] };
  };
  while (!signal || !signal.aborted) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, cut);
      buffer = buffer.slice(cut + (buffer[cut] === "\r" ? 2 : 1));
      if (line === "") dispatch();
      else if (line.startsWith(":")) continue;
      else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") current.id = val;
        else if (field === "event") current.event = val;
        else if (field === "data") current.data.push(val);
      }
    }
  }
}
