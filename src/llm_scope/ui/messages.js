// Readable rendering of what a call sent and got back, whatever the API: OpenAI chat messages (tool_calls),
// Anthropic content blocks (tool_use / tool_result), Responses API items, embeddings input, or anything else.
//
// A coding agent's call carries a long system prompt, tool definitions and whole files: text over LONG_LINES
// lines or LONG_CHARS characters shows its first lines and a "show all (12.3 KB)" toggle, and system prompts and
// tool definitions start folded. What is hidden is not built until it is opened, so a 150 KB conversation
// renders as fast as a short one.

import { h, pretty } from "./dom.js";

const LONG_CHARS = 2000;
const LONG_LINES = 30;
const PREVIEW_LINES = 8;
const PREVIEW_CHARS = 600;
const FOLDED_ROLES = new Set(["system", "developer", "instructions"]);
const encoder = new TextEncoder();
let whole = false; // while a folded message the user opened is built: its text shown whole, not folded again

export function fmtSize(textValue) {
  const bytes = encoder.encode(textValue).length;
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

function isLong(value) {
  if (value.length > LONG_CHARS) return true;
  let lines = 0;
  for (let i = value.indexOf("\n"); i >= 0; i = value.indexOf("\n", i + 1)) if (++lines >= LONG_LINES) return true;
  return false;
}

/** The first PREVIEW_LINES lines, at most PREVIEW_CHARS characters. */
function preview(value) {
  let at = -1;
  for (let n = 0; n < PREVIEW_LINES && at < value.length; n++) {
    const next = value.indexOf("\n", at + 1);
    at = next < 0 ? value.length : next;
  }
  return value.slice(0, Math.min(at, PREVIEW_CHARS)) + " …";
}

/** A block of text (or JSON) that folds when long: its first lines, and a toggle that builds the rest. */
function collapsible(tag, attrs, value) {
  if (whole || !isLong(value)) return h(tag, attrs, value);
  const body = h(tag, { ...attrs, class: `${attrs.class} collapsed`, "data-collapsed": "1" }, preview(value));
  const label = `show all (${fmtSize(value)})`;
  const toggle = h("button", { type: "button", class: "link small", "data-testid": "show-all" }, label);
  toggle.addEventListener("click", () => {
    const folded = body.classList.toggle("collapsed");
    body.textContent = folded ? preview(value) : value;
    body.dataset.collapsed = folded ? "1" : "0";
    toggle.textContent = folded ? label : "show less";
  });
  return h("div", { class: "long", "data-testid": "long-text" }, body, toggle);
}

/** A <details> whose body is built the first time it is opened. */
export function lazyDetails(attrs, summary, build, open = false) {
  const el = h("details", attrs, h("summary", {}, summary));
  let built = false;
  const fill = () => {
    if (built || !el.open) return;
    built = true;
    el.append(...[build()].flat(Infinity).filter(Boolean));
  };
  el.addEventListener("toggle", fill);
  if (open) {
    el.open = true;
    fill();
  }
  return el;
}

function text(value, cls = "text") {
  return typeof value === "string" ? collapsible("div", { class: cls }, value) : h("div", { class: cls }, value);
}

function json(value) {
  return collapsible("pre", { class: "json" }, pretty(value));
}

function sizeOf(content) {
  return fmtSize(typeof content === "string" ? content : JSON.stringify(content) ?? "");
}

export function toolCall(name, args, id) {
  return h(
    "div",
    { class: "tool-call", "data-testid": "tool-call", "data-tool": name || "" },
    h("div", { class: "tool-head" }, h("span", { class: "fn" }, "ƒ"), h("strong", { "data-testid": "tool-name" }, name || "(unnamed)"),
      id ? h("span", { class: "muted small" }, id) : null),
    args === undefined || args === null || args === "" ? null : collapsible("pre", { class: "json", "data-testid": "tool-args" }, pretty(args)),
  );
}

function toolResult(id, content) {
  return h(
    "div",
    { class: "tool-result", "data-testid": "tool-result" },
    h("div", { class: "tool-head" }, h("span", { class: "fn" }, "↩"), "result", id ? h("span", { class: "muted small" }, id) : null),
    renderContent(content),
  );
}

function part(p) {
  if (typeof p === "string") return text(p);
  if (!p || typeof p !== "object") return json(p);
  switch (p.type) {
    case "text":
    case "input_text":
    case "output_text":
      return text(p.text ?? "");
    case "refusal":
      return text(p.refusal ?? "", "text refusal");
    case "image_url":
    case "image":
    case "input_image": {
      const url = typeof p.image_url === "string" ? p.image_url : p.image_url?.url;
      return h("div", { class: "media" }, "🖼 image", url && !url.startsWith("data:") ? h("span", { class: "muted small" }, ` ${url}`) : null);
    }
    case "input_audio":
    case "file":
    case "input_file":
    case "document":
      return h("div", { class: "media" }, `📎 ${p.type}`);
    case "tool_use":
    case "server_tool_use":
      return toolCall(p.name, p.input, p.id);
    case "tool_result":
      return toolResult(p.tool_use_id, p.content);
    case "function_call":
      return toolCall(p.name, p.arguments, p.call_id || p.id);
    case "function_call_output":
      return toolResult(p.call_id, p.output);
    case "thinking":
    case "reasoning": {
      const body = p.thinking ?? (p.summary || []).map((x) => x.text || "").join("\n");
      return h("details", { class: "thinking" }, h("summary", {}, "Thinking"), text(body || ""));
    }
    default:
      return json(p);
  }
}

export function renderContent(content) {
  if (content === null || content === undefined) return null;
  if (typeof content === "string") return text(content);
  if (Array.isArray(content)) return content.map(part);
  return part(content);
}

/** One message (or Responses API item) as a role-labelled block; a system prompt folded, built when opened. */
export function message(m, fallbackRole = "message") {
  const role = m && typeof m === "object" ? m.role : null;
  if (FOLDED_ROLES.has(role)) {
    return lazyDetails({ class: "folded-msg", "data-testid": "folded-message", "data-role": role },
      `${role === "instructions" ? "Instructions" : `${role[0].toUpperCase()}${role.slice(1)} prompt`} (${sizeOf(m.content)})`,
      () => {
        whole = true;
        try {
          return block(m, role);
        } finally {
          whole = false;
        }
      });
  }
  return block(m, fallbackRole);
}

function block(m, fallbackRole) {
  if (typeof m === "string") return message({ role: fallbackRole, content: m });
  if (!m || typeof m !== "object") return h("div", { class: "msg" }, json(m));
  if (!m.role && m.type && m.type !== "message") {
    return h("div", { class: "msg", "data-role": m.type, "data-testid": "message" }, part(m));
  }
  const role = m.role || fallbackRole;
  const calls = (m.tool_calls || []).map((c) => toolCall(c.function?.name ?? c.name, c.function?.arguments ?? c.arguments, c.id));
  if (m.function_call) calls.push(toolCall(m.function_call.name, m.function_call.arguments));
  return h(
    "div",
    { class: `msg role-${role.replace(/[^a-z_]/gi, "")}`, "data-role": role, "data-testid": "message" },
    h("div", { class: "role" }, role, m.name ? h("span", { class: "muted" }, ` · ${m.name}`) : null,
      m.tool_call_id ? h("span", { class: "muted small" }, ` · ${m.tool_call_id}`) : null),
    h(
      "div",
      { class: "body" },
      m.reasoning_content ? part({ type: "thinking", thinking: m.reasoning_content }) : null,
      renderContent(m.content),
      m.refusal ? text(m.refusal, "text refusal") : null,
      calls,
    ),
  );
}

function toolDef(t) {
  const fn = t.function || t;
  const name = fn.name || t.type || "tool";
  const schema = fn.parameters || fn.input_schema || t.input_schema;
  return lazyDetails(
    { class: "tool-def", "data-testid": "tool-def" },
    [h("span", { class: "fn" }, "ƒ"), h("strong", {}, name), fn.description ? h("span", { class: "muted" }, ` — ${fn.description}`) : null],
    () => (schema ? json(schema) : json(t)),
  );
}

/** The input: system/instructions, messages or Responses items, and tool definitions. */
export function renderInput(input, route) {
  const role = route === "embeddings" ? "input" : "user"; // a bare string is the user's prompt
  if (input === null || input === undefined) return [h("p", { class: "muted" }, "Not recorded (content tracing is off).")];
  const out = [];
  let items = input;
  let tools = [];
  if (!Array.isArray(input) && typeof input === "object") {
    if (input.system) out.push(message({ role: "system", content: input.system }));
    if (input.instructions) out.push(message({ role: "instructions", content: input.instructions }));
    tools = input.tools || [];
    items = "messages" in input ? input.messages : "input" in input ? input.input : input;
  }
  if (Array.isArray(items)) out.push(...items.map((m) => message(m, role)));
  else out.push(message(items, role));
  if (tools.length) {
    out.push(h("div", { class: "tools", "data-testid": "tools" }, h("h3", {}, `Tools (${tools.length})`), tools.map(toolDef)));
  }
  return out;
}

export function renderOutput(output) {
  if (output === null || output === undefined) return [h("p", { class: "muted" }, "No output recorded.")];
  if (Array.isArray(output)) return output.map((m) => message(m, "assistant"));
  if (typeof output === "object" && ("role" in output || "content" in output || "tool_calls" in output)) {
    return [message(output, "assistant")];
  }
  return [message({ role: "output", content: typeof output === "string" ? output : [output] })];
}
