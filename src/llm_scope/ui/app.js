// The dashboard shell: hash routing (#/calls, #/call/<id>, #/sessions, #/session/<id>, #/usage, #/keys), the header,
// and one poller that refreshes the current view every 2 s while the tab is visible.

import { callsView } from "./calls.js";
import { callView } from "./detail.js";
import { add, api, clear, h } from "./dom.js";
import { keysView } from "./keys.js";
import { sessionView, sessionsView } from "./sessions.js";
import { watchTables } from "./tables.js";
import { usageView } from "./usage.js";

const POLL_MS = 2000;
const VIEWS = { calls: callsView, call: callView, sessions: sessionsView, session: sessionView, usage: usageView, keys: keysView };
const NAV = { calls: "calls", call: "calls", sessions: "sessions", session: "sessions", usage: "usage", keys: "keys" };

const state = { generation: 0, poll: null, busy: false, config: { version: "", langfuse_url: null } };

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const [name, ...rest] = path.split("/");
  const id = rest.length && rest.join("/") ? decodeURIComponent(rest.join("/")) : null;
  return { name: VIEWS[name] ? name : "calls", id, params: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

function setStatus(ok, error) {
  const el = document.getElementById("live");
  if (ok) {
    el.dataset.state = document.hidden ? "paused" : "live";
    el.title = "Refreshing every 2 s";
    el.lastChild.textContent = document.hidden ? "Paused" : "Live";
    return;
  }
  el.dataset.state = "offline";
  el.title = error?.message || "";
  el.lastChild.textContent = error?.status === 401 ? "Signed out" : "Offline";
}

function showError(main, error) {
  const signIn = error?.status === 401;
  add(clear(main),
    h(
      "div",
      { class: "notice bad", "data-testid": "view-error" },
      h("strong", {}, signIn ? "Not signed in. " : "Could not load this view. "),
      signIn ? "Open /ui?key=<master key> once to sign in to the dashboard." : error?.message || String(error),
    ),
  );
}

async function route() {
  const { name, id, params } = parseHash();
  const generation = ++state.generation;
  state.poll = null;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === NAV[name]);
  }
  const main = clear(document.getElementById("view"));
  main.dataset.view = name;
  delete main.dataset.ready;
  const ctx = { id, params, config: state.config, alive: () => generation === state.generation };
  try {
    const poll = await VIEWS[name](main, ctx);
    if (ctx.alive()) {
      state.poll = poll || null;
      main.dataset.ready = "1";
      setStatus(true);
    }
  } catch (error) {
    if (ctx.alive()) {
      showError(main, error);
      setStatus(false, error);
    }
  }
}

async function tick() {
  if (document.hidden || state.busy || !state.poll) return;
  const poll = state.poll;
  state.busy = true;
  try {
    await poll();
    setStatus(true);
  } catch (error) {
    setStatus(false, error);
  } finally {
    state.busy = false;
  }
}

function header(config) {
  const nav = h(
    "nav",
    {},
    h("a", { href: "#/calls", "data-view": "calls", "data-testid": "nav-calls" }, "Calls"),
    h("a", { href: "#/sessions", "data-view": "sessions", "data-testid": "nav-sessions" }, "Sessions"),
    h("a", { href: "#/usage", "data-view": "usage", "data-testid": "nav-usage" }, "Usage"),
    config.master_key ? h("a", { href: "#/keys", "data-view": "keys", "data-testid": "nav-keys" }, "Keys") : null,
  );
  const langfuse = config.langfuse_url
    ? h("a", { href: config.langfuse_url, target: "_blank", rel: "noopener noreferrer", class: "ext" }, "Langfuse ↗")
    : null;
  return h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "#/calls" }, h("img", { src: "ui/assets/favicon.svg", alt: "" }), "llm-scope"),
    nav,
    h("span", { class: "spacer" }),
    langfuse,
    h("span", { id: "live", "data-testid": "live", "data-state": "live" }, h("span", { class: "dot" }), "Live"),
    h("span", { class: "version", "data-testid": "version" }, config.version ? `v${config.version}` : ""),
  );
}

async function start() {
  try {
    state.config = await api("api/ui-config");
  } catch (error) {
    if (error?.status === 401) {
      document.body.prepend(header(state.config));
      showError(document.getElementById("view"), error);
      return;
    }
  }
  document.body.prepend(header(state.config));
  watchTables(document.getElementById("view"));
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", tick);
  setInterval(tick, POLL_MS);
  await route();
}

start();
