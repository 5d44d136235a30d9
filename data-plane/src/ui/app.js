// Tollgate Playground: one page, hash routes, no dependencies.
// Admin JSON comes from this origin; MCP and LLM calls go to the routes' own ports (CORS).

const $ = (id) => document.getElementById(id);

/** Creates an element: attributes (`on*` become listeners) and children (strings or nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.flat().filter((c) => c !== undefined && c !== null));
  return node;
}

const pretty = (v) => JSON.stringify(v, null, 2);

function showError(id, err) {
  const node = $(id);
  node.textContent = err ? describe(err) : "";
  node.hidden = !err;
}

/** A human sentence for any failure; a fetch TypeError is almost always CORS or a dead port. */
function describe(err) {
  if (typeof err === "string") return err;
  if (err instanceof TypeError) {
    return `Network error: ${err.message}. The route may lack a CORS policy allowing this origin ` +
      `(${location.origin}), or nothing listens at that address.`;
  }
  if (err?.name === "TimeoutError") return "Timed out waiting for an answer.";
  return err?.message ?? String(err);
}

class HttpError extends Error {
  constructor(status, statusText, body) {
    super(`HTTP ${status} ${statusText}${body ? `\n${body}` : ""}`);
    this.status = status;
  }
}

class RpcError extends Error {
  constructor(error) {
    super(`JSON-RPC error ${error.code ?? ""}: ${error.message ?? pretty(error)}` +
      (error.data !== undefined ? `\n${pretty(error.data)}` : ""));
  }
}

async function checkOk(res) {
  if (!res.ok) throw new HttpError(res.status, res.statusText, (await res.text()).trim());
  return res;
}

/** The admin token field, kept for this tab only; sent to the admin API when filled. */
const TOKEN_KEY = "tollgate-admin-token";

function adminHeaders() {
  const token = $("admin-token")?.value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const getJson = async (path) => {
  const res = await fetch(path, { headers: adminHeaders() });
  if (res.status === 401) {
    throw new HttpError(401, "Unauthorized", "Enter the admin token (--admin-token-file) in the field at the top.");
  }
  return (await checkOk(res)).json();
};

function setRows(table, rows, emptyText, columns) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...(rows.length
    ? rows
    : [el("tr", {}, el("td", { class: "empty", colspan: columns }, emptyText))]));
}

// ---------------------------------------------------------------- config and routes

let configCache = null;

async function loadConfig(force = false) {
  if (!configCache || force) configCache = await getJson("/api/config");
  return configCache;
}

const KINDS = ["mcp", "ai", "host"];

/** Every route of the config, flattened, with what the UI needs to call it. */
function routesOf(config) {
  const out = [];
  for (const bind of config.binds ?? []) {
    for (const listener of bind.listeners ?? []) {
      for (const route of listener.routes ?? []) {
        const backend = route.backends?.[0] ?? {};
        const kind = KINDS.find((k) => k in backend) ?? "host";
        const origin = `${location.protocol}//${location.hostname}:${bind.port}`;
        const paths = (route.matches?.length ? route.matches : [{ path: { pathPrefix: "/" } }])
          .map((m) => m.path ?? { pathPrefix: "/" });
        out.push({ name: route.name, kind, origin, paths, listener, route, backend, port: bind.port });
      }
    }
  }
  return out;
}

/** The literal path a match names: a prefix or an exact path; `null` for a regex. */
function basePath(path) {
  if (path.exact !== undefined) return path.exact;
  if (path.pathPrefix !== undefined) return path.pathPrefix;
  return null;
}

/** `prefix` + `suffix` without a doubled slash. */
const join = (prefix, suffix) => prefix.replace(/\/+$/, "") + suffix;

/** `host:port`, `name (provider)` per AI provider, `name (stdio|sse|mcp)` per MCP target. */
function backendSummary(r) {
  const provider = (p) => (typeof p.provider === "string" ? p.provider : Object.keys(p.provider ?? {})[0]);
  const transport = (t) => ["stdio", "sse", "mcp"].find((k) => k in t) ?? "?";
  return (r.route.backends ?? []).map((b) => {
    if (b.host) return b.host;
    if (b.ai) return b.ai.groups.flat().map((p) => `${p.name} (${provider(p)})`).join(", ");
    if (b.mcp) return b.mcp.targets.map((t) => `${t.name} (${transport(t)})`).join(", ");
    return "?";
  }).join("; ");
}

async function showRoutes(force) {
  showError("routes-error", null);
  try {
    const routes = routesOf((await loadConfig(force)).config);
    setRows("routes-table", routes.map((r) => el("tr", { dataset: { route: r.name, kind: r.kind } },
      el("td", {}, r.name),
      el("td", {}, el("span", { class: `kind kind-${r.kind}` }, r.kind)),
      el("td", {}, r.paths.map((p) => {
        const base = basePath(p);
        const text = base === null ? `${r.origin} ~ ${p.regex}` : r.origin + base;
        return el("div", {}, el("code", {}, text));
      })),
      el("td", {}, r.listener.name + (r.listener.hostname ? ` (${r.listener.hostname})` : "") +
        (r.route.hostnames?.length ? ` [${r.route.hostnames.join(", ")}]` : "")),
      el("td", {}, backendSummary(r)),
      el("td", {}, r.kind === "host" ? "" :
        el("a", { href: `#${r.kind === "ai" ? "llm" : "mcp"}?route=${encodeURIComponent(r.name)}` }, "Try")),
    )), "No routes.", 6);
  } catch (e) {
    setRows("routes-table", [], "", 6);
    showError("routes-error", e);
  }
}

/** Fills a route picker with the routes of one kind; returns them. */
async function fillRoutePicker(select, kind) {
  const routes = routesOf((await loadConfig()).config).filter((r) => r.kind === kind);
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "(type a URL)"),
    ...routes.map((r) => el("option", { value: r.name }, `${r.name}  (:${r.port})`)));
  if (routes.some((r) => r.name === current)) select.value = current;
  return routes;
}

// ---------------------------------------------------------------- MCP clients

const CLIENT_INFO = { name: "tollgate-playground", version: "0.1" };
const TIMEOUT_MS = 60_000;

/** Splits a text/event-stream into `{event, data}` records; keeps the unfinished tail. */
function parseSse(buffer) {
  const events = [];
  const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
}

/** The result of the JSON-RPC response with `id` among `messages`, or throws its error. */
function pick(messages, id) {
  const reply = [messages].flat().find((m) => m && m.id === id && ("result" in m || "error" in m));
  if (reply?.error) throw new RpcError(reply.error);
  return reply;
}

/** `Authorization: Bearer` for the credential typed in a page, if any. */
function bearer(fieldId) {
  const credential = $(fieldId).value.trim();
  return credential ? { Authorization: `Bearer ${credential}` } : {};
}

/** MCP Streamable HTTP (2025-06-18): every message is a POST, replies are JSON or SSE. */
class StreamableClient {
  constructor(url, headers) {
    this.url = url;
    this.nextId = 1;
    this.headers = { ...headers };
    this.protocolVersion = "2025-06-18";
  }

  async post(message) {
    return checkOk(await fetch(this.url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        ...this.headers,
      },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }));
  }

  async request(method, params) {
    const id = this.nextId++;
    const res = await this.post({ jsonrpc: "2.0", id, method, params });
    const session = res.headers.get("Mcp-Session-Id");
    if (session) this.headers["Mcp-Session-Id"] = session;
    const type = res.headers.get("Content-Type") ?? "";
    let reply;
    if (type.includes("text/event-stream")) {
      reply = await this.readStream(res, id);
    } else if (type.includes("application/json")) {
      reply = pick(await res.json(), id);
    }
    if (!reply) throw new Error(`No JSON-RPC response to ${method} (HTTP ${res.status}, ${type || "no content type"}).`);
    return reply.result;
  }

  /** Reads SSE until the `message` event answering `id`; other events are ignored. */
  async readStream(res, id) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return null;
        const parsed = parseSse(buffer + value);
        buffer = parsed.rest;
        for (const { event, data } of parsed.events) {
          if (event !== "message") continue;
          let message;
          try { message = JSON.parse(data); } catch { continue; }
          const reply = pick(message, id);
          if (reply) return reply;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  async notify(method, params) {
    await this.post({ jsonrpc: "2.0", method, ...(params ? { params } : {}) });
  }

  async initialize() {
    const result = await this.request("initialize", {
      protocolVersion: this.protocolVersion, capabilities: {}, clientInfo: CLIENT_INFO,
    });
    this.protocolVersion = result.protocolVersion ?? this.protocolVersion;
    this.headers["MCP-Protocol-Version"] = this.protocolVersion;
    await this.notify("notifications/initialized");
    return result;
  }

  async close() {
    if (!this.headers["Mcp-Session-Id"]) return;
    await fetch(this.url, { method: "DELETE", headers: this.headers }).catch(() => {});
  }
}

/** MCP legacy HTTP+SSE (2024-11-05): an EventSource for replies, POSTs to its `endpoint`. */
class SseClient {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.protocolVersion = "2024-11-05";
  }

  open() {
    return new Promise((resolve, reject) => {
      const source = new EventSource(this.url);
      this.source = source;
      const timer = setTimeout(() => fail(new Error("No `endpoint` event from the SSE stream.")), TIMEOUT_MS);
      const fail = (err) => {
        clearTimeout(timer);
        source.close();
        reject(err);
      };
      source.addEventListener("endpoint", (e) => {
        clearTimeout(timer);
        this.endpoint = new URL(e.data.trim(), this.url).href;
        resolve();
      });
      source.addEventListener("message", (e) => this.onMessage(e.data));
      source.onerror = () => {
        const err = new Error(`The SSE stream at ${this.url} failed or closed. Check the URL, and that ` +
          `the route has a CORS policy allowing this origin (${location.origin}).`);
        if (!this.endpoint) return fail(err);
        source.close();
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this.onlost?.(err);
      };
    });
  }

  onMessage(data) {
    let message;
    try { message = JSON.parse(data); } catch { return; }
    for (const m of [message].flat()) {
      const waiter = this.pending.get(m?.id);
      if (!waiter || !("result" in m || "error" in m)) continue;
      this.pending.delete(m.id);
      if (m.error) waiter.reject(new RpcError(m.error));
      else waiter.resolve(m.result);
    }
  }

  async post(message) {
    await checkOk(await fetch(this.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }));
  }

  async request(method, params) {
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`No reply to ${method} on the SSE stream.`));
      }, TIMEOUT_MS);
      const done = (f) => (v) => { clearTimeout(timer); f(v); };
      this.pending.set(id, { resolve: done(resolve), reject: done(reject) });
    });
    try {
      await this.post({ jsonrpc: "2.0", id, method, params });
    } catch (e) {
      this.pending.delete(id);
      throw e;
    }
    return reply;
  }

  async notify(method, params) {
    await this.post({ jsonrpc: "2.0", method, ...(params ? { params } : {}) });
  }

  async initialize() {
    await this.open();
    const result = await this.request("initialize", {
      protocolVersion: this.protocolVersion, capabilities: {}, clientInfo: CLIENT_INFO,
    });
    this.protocolVersion = result.protocolVersion ?? this.protocolVersion;
    await this.notify("notifications/initialized");
    return result;
  }

  async close() {
    this.source?.close();
  }
}

// ---------------------------------------------------------------- MCP page

const mcp = { client: null, routes: [], tools: [], tool: null };

function mcpUrlFor(route, transport) {
  const base = basePath(route.paths[0]) ?? "/";
  if (transport === "sse") return route.origin + (base === "/" ? "/sse" : join(base, "/sse"));
  return route.origin + (base === "/" ? "/mcp" : base);
}

function setMcpStatus(text) {
  $("mcp-status").textContent = text;
  const connected = text === "connected";
  $("mcp-disconnect").disabled = !mcp.client;
  $("mcp-list").disabled = !connected;
  $("mcp-call").disabled = !connected || !mcp.tool;
}

function updateMcpUrl() {
  const route = mcp.routes.find((r) => r.name === $("mcp-route").value);
  if (route) $("mcp-url").value = mcpUrlFor(route, $("mcp-transport").value);
}

async function mcpDisconnect() {
  const client = mcp.client;
  mcp.client = null;
  await client?.close();
  $("mcp-server").textContent = "";
  setMcpStatus("disconnected");
}

async function mcpConnect() {
  await mcpDisconnect();
  showError("mcp-error", null);
  renderTools([]);
  const url = $("mcp-url").value.trim();
  if (!url) return showError("mcp-error", "Enter the URL of an MCP route.");
  const credential = bearer("mcp-key");
  const sse = $("mcp-transport").value === "sse";
  if (sse && credential.Authorization) {
    return showError("mcp-error", "The legacy SSE transport cannot send a credential (EventSource sends no " +
      "headers): use Streamable HTTP, or clear the credential.");
  }
  const client = sse ? new SseClient(url) : new StreamableClient(url, credential);
  mcp.client = client;
  client.onlost = (err) => {
    if (mcp.client !== client) return;
    mcp.client = null;
    showError("mcp-error", err);
    setMcpStatus("disconnected");
  };
  setMcpStatus("connecting…");
  try {
    const info = await client.initialize();
    if (mcp.client !== client) return;
    const server = info.serverInfo ? `${info.serverInfo.name} ${info.serverInfo.version ?? ""}` : "server";
    $("mcp-server").textContent = `${server.trim()}, protocol ${client.protocolVersion}`;
    setMcpStatus("connected");
    await mcpListTools();
  } catch (e) {
    if (mcp.client !== client) return;
    showError("mcp-error", e);
    mcp.client = null;
    client.close();
    setMcpStatus("error");
  }
}

async function mcpListTools() {
  showError("mcp-error", null);
  try {
    const tools = [];
    let cursor;
    do {
      const page = await mcp.client.request("tools/list", cursor ? { cursor } : {});
      tools.push(...(page.tools ?? []));
      cursor = page.nextCursor;
    } while (cursor);
    renderTools(tools);
  } catch (e) {
    showError("mcp-error", e);
  }
}

function renderTools(tools) {
  mcp.tools = tools;
  const keep = tools.find((t) => t.name === mcp.tool?.name);
  $("mcp-tools").replaceChildren(...(tools.length
    ? tools.map((t) => el("li", {}, el("button", {
      type: "button", dataset: { tool: t.name }, title: t.description ?? "", onclick: () => selectTool(t),
    }, t.name, t.description ? el("small", {}, t.description) : null)))
    : [el("li", { class: "hint" }, mcp.client ? "No tools." : "Connect to list tools.")]));
  selectTool(keep ?? null);
}

function selectTool(tool) {
  mcp.tool = tool;
  for (const b of $("mcp-tools").querySelectorAll("button")) {
    b.classList.toggle("selected", b.dataset.tool === tool?.name);
  }
  $("mcp-tool-name").textContent = tool ? tool.title ?? tool.name : "No tool selected";
  $("mcp-tool-desc").textContent = tool?.description ?? "";
  renderToolForm(tool);
  setMcpStatus($("mcp-status").textContent);
}

/** The JSON Schema type of a property: the first non-null of `type` or `anyOf`/`oneOf`. */
function schemaType(schema) {
  const types = [schema.type ?? (schema.anyOf ?? schema.oneOf ?? []).map(schemaType)].flat();
  return types.find((t) => t && t !== "null") ?? (schema.enum ? "string" : undefined);
}

function renderToolForm(tool) {
  const form = $("mcp-tool-form");
  if (!tool) return form.replaceChildren();
  const schema = tool.inputSchema ?? {};
  const required = new Set(schema.required ?? []);
  const props = Object.entries(schema.properties ?? {});
  if (!props.length) return form.replaceChildren(el("p", { class: "hint" }, "This tool takes no arguments."));
  form.replaceChildren(...props.map(([name, prop]) => {
    const type = schemaType(prop);
    const id = `mcp-arg-${name}`;
    const req = required.has(name);
    const common = { id, name, "aria-required": String(req), dataset: { type: type ?? "json", required: String(req) } };
    const placeholder = ["string", "number"].includes(typeof prop.default) ? prop.default : "";
    let input;
    if (prop.enum) {
      input = el("select", common, req ? null : el("option", { value: "" }, ""),
        ...prop.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
    } else if (type === "string") {
      input = el("input", { ...common, type: "text", placeholder });
    } else if (type === "number" || type === "integer") {
      input = el("input", { ...common, type: "number", step: type === "integer" ? "1" : "any", placeholder });
    } else if (type === "boolean") {
      input = el("input", { ...common, type: "checkbox", checked: prop.default === true });
    } else {
      input = el("textarea", { ...common, rows: 3, placeholder: type === "array" ? "[ ]" : "{ }" });
    }
    if (prop.enum) input.dataset.type = "enum";
    return el("div", { class: "field" },
      el("label", { for: id }, name, el("span", { class: "type" }, type ?? "json"),
        req ? el("span", { class: "req", title: "required" }, "*") : null),
      input,
      prop.description ? el("div", { class: "hint" }, prop.description) : null);
  }));
}

/** The `arguments` object from the form; throws a readable error on bad input. */
function toolArguments() {
  const args = {};
  for (const input of $("mcp-tool-form").querySelectorAll("[name]")) {
    const { name } = input;
    const kind = input.dataset.type;
    const isRequired = input.dataset.required === "true";
    if (kind === "boolean") {
      if (input.checked || isRequired) args[name] = input.checked;
      continue;
    }
    const text = input.value.trim();
    if (!text) {
      if (isRequired) throw new Error(`"${name}" is required.`);
      continue;
    }
    if (kind === "string") args[name] = input.value;
    else if (kind === "integer" || kind === "number") {
      const n = Number(text);
      if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
        throw new Error(`"${name}" must be ${kind === "integer" ? "an integer" : "a number"}.`);
      }
      args[name] = n;
    } else {
      try { args[name] = JSON.parse(text); } catch (e) { throw new Error(`"${name}" is not valid JSON: ${e.message}`); }
    }
  }
  return args;
}

async function mcpCall() {
  showError("mcp-error", null);
  const result = $("mcp-result");
  result.replaceChildren();
  result.classList.remove("is-error");
  $("mcp-raw").textContent = "";
  let args;
  try { args = toolArguments(); } catch (e) { return showError("mcp-error", e); }
  $("mcp-call").disabled = true;
  try {
    const reply = await mcp.client.request("tools/call", { name: mcp.tool.name, arguments: args });
    $("mcp-raw").textContent = pretty(reply);
    result.classList.toggle("is-error", !!reply.isError);
    if (reply.isError) result.append(el("p", { class: "error" }, "The tool reported an error:"));
    result.append(...(reply.content ?? []).map(renderContent));
    if (!reply.content?.length && reply.structuredContent !== undefined) {
      result.append(el("pre", {}, pretty(reply.structuredContent)));
    }
  } catch (e) {
    showError("mcp-error", e);
  } finally {
    setMcpStatus($("mcp-status").textContent);
  }
}

function renderContent(item) {
  switch (item.type) {
    case "text": return el("pre", {}, item.text);
    case "image": return el("img", { src: `data:${item.mimeType};base64,${item.data}`, alt: "image result" });
    case "resource": return el("pre", {}, item.resource?.text ?? pretty(item.resource));
    default: return el("pre", {}, pretty(item));
  }
}

async function showMcp(params) {
  try {
    mcp.routes = await fillRoutePicker($("mcp-route"), "mcp");
  } catch (e) {
    showError("mcp-error", e);
  }
  const wanted = params.get("route");
  if (wanted && mcp.routes.some((r) => r.name === wanted)) {
    $("mcp-route").value = wanted;
    updateMcpUrl();
  } else if (!$("mcp-url").value && mcp.routes.length) {
    $("mcp-route").value = mcp.routes[0].name;
    updateMcpUrl();
  }
}

// ---------------------------------------------------------------- LLM page

const llm = { routes: [] };

function updateLlmRoute() {
  const route = llm.routes.find((r) => r.name === $("llm-route").value);
  if (!route) return;
  $("llm-url").value = route.origin + join(basePath(route.paths[0]) ?? "/", "/v1/chat/completions");
  const model = route.backend.ai?.groups?.flat().find((p) => p.model)?.model;
  if (model) $("llm-model").value = model;
}

async function llmSend() {
  showError("llm-error", null);
  $("llm-answer").textContent = "";
  $("llm-usage").textContent = "";
  $("llm-raw").textContent = "";
  const url = $("llm-url").value.trim();
  if (!url) return showError("llm-error", "Enter the URL of an AI route.");
  const headers = { "Content-Type": "application/json", ...bearer("llm-key") };
  const body = { model: $("llm-model").value.trim(), messages: [{ role: "user", content: $("llm-message").value }] };
  $("llm-send").disabled = true;
  $("llm-status").textContent = "waiting…";
  const started = performance.now();
  try {
    const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: AbortSignal.timeout(TIMEOUT_MS * 5) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    $("llm-raw").textContent = json === undefined ? text : pretty(json);
    if (!res.ok) {
      const message = json?.error?.message ?? json?.message ?? text;
      throw new HttpError(res.status, res.statusText, typeof message === "string" ? message : pretty(message));
    }
    if (json === undefined) throw new Error("The answer is not JSON.");
    const message = json.choices?.[0]?.message;
    $("llm-answer").textContent = message?.content ??
      (message?.tool_calls ? pretty(message.tool_calls) : "(no choices[0].message.content)");
    const u = json.usage;
    $("llm-usage").textContent = (json.model ? `model ${json.model}` : "") +
      (u ? ` · prompt ${u.prompt_tokens ?? "?"} + completion ${u.completion_tokens ?? "?"} = ${u.total_tokens ?? "?"} tokens` : "") +
      ` · ${Math.round(performance.now() - started)} ms`;
  } catch (e) {
    showError("llm-error", e);
  } finally {
    $("llm-send").disabled = false;
    $("llm-status").textContent = "";
  }
}

async function showLlm(params) {
  try {
    llm.routes = await fillRoutePicker($("llm-route"), "ai");
  } catch (e) {
    showError("llm-error", e);
  }
  const wanted = params.get("route");
  if (wanted && llm.routes.some((r) => r.name === wanted)) {
    $("llm-route").value = wanted;
    updateLlmRoute();
  } else if (!$("llm-url").value && llm.routes.length) {
    $("llm-route").value = llm.routes[0].name;
    updateLlmRoute();
  }
}

// ---------------------------------------------------------------- admin pages

async function showConfig(force) {
  showError("config-error", null);
  try {
    const c = await loadConfig(force);
    $("config-meta").replaceChildren(...[["Version", c.version], ["Source", c.source], ["Applied at", c.appliedAt]]
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { id: `config-${k.split(" ")[0].toLowerCase()}` }, v ?? "")]));
    $("config-json").textContent = pretty(c.config);
  } catch (e) {
    $("config-meta").replaceChildren();
    $("config-json").textContent = "";
    showError("config-error", e);
  }
}

async function showRateLimits() {
  showError("ratelimits-error", null);
  try {
    const { buckets = [] } = await getJson("/api/ratelimits");
    setRows("ratelimits-table", buckets.map((b) => el("tr", {},
      ...[b.gateway, b.listener, b.route, b.position, b.type, b.level, b.maxTokens, b.tokensPerFill, b.fillInterval, b.secondsToRefill]
        .map((v) => el("td", {}, String(v ?? ""))))), "No rate-limit buckets.", 10);
  } catch (e) {
    setRows("ratelimits-table", [], "", 10);
    showError("ratelimits-error", e);
  }
}

async function showSessions() {
  showError("sessions-error", null);
  try {
    const { sessions = [] } = await getJson("/api/mcp/sessions");
    const secs = (v) => (typeof v === "number" ? String(Math.round(v)) : "");
    setRows("sessions-table", sessions.map((s) => el("tr", { dataset: { session: s.session } },
      el("td", {}, el("code", {}, s.session)),
      el("td", {}, (s.route ?? "") + (s.port ? ` (:${s.port})` : "")),
      el("td", {}, s.transport ?? ""),
      el("td", {}, (s.targets ?? []).map(targetText).map((t) => el("div", {}, t))),
      el("td", {}, String(s.inFlight ?? "")),
      el("td", {}, secs(s.ageSeconds)),
      el("td", {}, secs(s.idleSeconds)))), "No MCP sessions.", 7);
  } catch (e) {
    setRows("sessions-table", [], "", 7);
    showError("sessions-error", e instanceof HttpError && e.status === 404
      ? "This gateway does not list MCP sessions (HTTP 404)." : e);
  }
}

/** `demo (stdio, pid 42): connected, 1 restart`, from whichever fields the gateway gives. */
function targetText(t) {
  const about = [t.kind, t.pid ? `pid ${t.pid}` : null].filter(Boolean).join(", ");
  const state = t.state ?? (t.connected === undefined ? "" : t.connected ? "connected" : "disconnected");
  const restarts = t.restarts ? `, ${t.restarts} restart${t.restarts === 1 ? "" : "s"}` : "";
  return `${t.name}${about ? ` (${about})` : ""}${state ? `: ${state}` : ""}${restarts}`;
}

// ---------------------------------------------------------------- navigation

const PAGES = {
  routes: () => showRoutes(true),
  mcp: showMcp,
  llm: showLlm,
  config: () => showConfig(true),
  ratelimits: showRateLimits,
  sessions: showSessions,
};

function navigate() {
  const [name, query] = location.hash.slice(1).split("?");
  const page = name in PAGES ? name : "routes";
  for (const p of Object.keys(PAGES)) {
    $(`page-${p}`).hidden = p !== page;
    $(`nav-${p}`).classList.toggle("active", p === page);
  }
  PAGES[page](new URLSearchParams(query ?? ""));
}

$("routes-refresh").onclick = () => showRoutes(true);
$("config-refresh").onclick = () => showConfig(true);
$("ratelimits-refresh").onclick = showRateLimits;
$("sessions-refresh").onclick = showSessions;
$("mcp-route").onchange = updateMcpUrl;
$("mcp-transport").onchange = updateMcpUrl;
$("mcp-url").oninput = () => { $("mcp-route").value = ""; };
$("mcp-connect").onclick = mcpConnect;
$("mcp-disconnect").onclick = mcpDisconnect;
$("mcp-list").onclick = mcpListTools;
$("mcp-call").onclick = mcpCall;
$("mcp-tool-form").onsubmit = (e) => {
  e.preventDefault();
  if (!$("mcp-call").disabled) mcpCall();
};
$("mcp-connect-form").onsubmit = (e) => {
  e.preventDefault();
  mcpConnect();
};
$("llm-route").onchange = updateLlmRoute;
$("llm-url").oninput = () => { $("llm-route").value = ""; };
$("llm-form").onsubmit = (e) => {
  e.preventDefault();
  llmSend();
};
$("llm-send").onclick = llmSend;
$("llm-message").onkeydown = (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) llmSend();
};
$("admin-token").value = sessionStorage.getItem(TOKEN_KEY) ?? "";
$("admin-token").onchange = () => {
  sessionStorage.setItem(TOKEN_KEY, $("admin-token").value.trim());
  configCache = null;
  navigate();
};
window.addEventListener("hashchange", navigate);
renderTools([]);
navigate();
