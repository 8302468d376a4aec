// The dashboard's entry point: sign-in, language switch, hash router, and the live event stream.
import { api, onUnauthorized, session } from "./api.js";
import { LANGS, countyName, currentLang, loadStrings, setCatalogue, setLang, t, translate } from "./i18n.js";
import { h, toast } from "./ui.js";
import * as feed from "./feed.js";
import * as grid from "./grid.js";
import * as series from "./series.js";
import * as incidents from "./incidents.js";
import * as stats from "./stats.js";

const ROUTES = { feed, grid, series, incidents, incident: incidents, stats };
const app = { me: null, live: null, liveOn: false, current: null };

function can(permission) {
  return !!app.me && app.me.permissions.includes(permission);
}
/** May the signed-in user act on something of ``region``? (a county-scoped token acts on its county only) */
function mayActOn(region) {
  return !!app.me && (app.me.county === null || app.me.county === region);
}
export const ctx = { can, mayActOn, me: () => app.me, go: (hash) => (location.hash = hash) };

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, id] = path.split("/");
  return { name: name || "feed", id, params: new URLSearchParams(query || "") };
}

async function render() {
  const view = document.getElementById("view");
  if (!app.me) return renderSignIn(view);
  const route = parseHash();
  const mod = ROUTES[route.name] || feed;
  document.querySelectorAll("#nav a").forEach((a) => {
    const r = a.dataset.route;
    a.classList.toggle("active", r === route.name || (r === "incidents" && route.name === "incident"));
  });
  if (app.current && app.current.leave) app.current.leave();
  view.replaceChildren(h("p.muted", {}, t("loading")));
  app.current = mod;
  try {
    await mod.show(view, route, ctx);
  } catch (err) {
    view.replaceChildren(h("p.error", {}, `${t("err.generic")}: ${err.message}`));
  }
}

function renderSignIn(view) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("live").hidden = true;
  document.getElementById("who").textContent = "";
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const error = h("p.error", { id: "signin-error", hidden: true });
  const form = h(
    "form.signin",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        session.set(input.value.trim());
        if (!(await signIn())) {
          error.textContent = t("auth.bad");
          error.hidden = false;
        }
      },
    },
    h("h1", {}, t("auth.title")),
    h("label.field", {}, h("span", {}, t("auth.token")), input),
    h("button.primary", { type: "submit", id: "signin" }, t("auth.signin")),
    error,
    h("p.muted", {}, t("auth.hint")),
  );
  view.replaceChildren(form);
  input.focus();
}

async function signIn() {
  try {
    app.me = await api("/api/me");
    setCatalogue(await api("/api/stats/catalogue"));
  } catch {
    session.clear();
    app.me = null;
    return false;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  showWho();
  connect();
  await render();
  return true;
}

function showWho() {
  const me = app.me;
  document.getElementById("who").textContent = me
    ? `${me.name} · ${t(`role.${me.role}`)} · ${countyName(me.county)}`
    : "";
}

function signOut() {
  session.clear();
  app.me = null;
  if (app.live) app.live.close();
  app.live = null;
  render();
}

/** The live stream: alert and incident changes as they commit, handed to the current view. */
function connect() {
  if (app.live) app.live.close();
  document.getElementById("live").hidden = false;
  const es = new EventSource(`/api/events?access_token=${encodeURIComponent(session.get())}`);
  app.live = es;
  const state = (on) => {
    app.liveOn = on;
    showLive();
  };
  state(false);
  let opened = false;
  es.onopen = () => {
    state(true);
    // back after a break: changes made meanwhile were never sent, so the page reloads what it shows
    if (opened && app.live === es) render();
    opened = true;
  };
  es.onerror = () => state(false);
  for (const type of ["alert.created", "alert.updated", "incident.updated"]) {
    es.addEventListener(type, (msg) => {
      const data = JSON.parse(msg.data);
      if (type === "alert.created") toast(`${t("feed.new")}: ${data.summary}`, `lv-${data.level}`);
      if (app.current && app.current.onEvent) app.current.onEvent(type, data);
    });
  }
}

/** The live-stream badge, in the current language. */
function showLive() {
  const badge = document.getElementById("live");
  const on = app.liveOn;
  badge.textContent = on ? `● ${t("live.on")}` : `○ ${t("live.off")}`;
  badge.classList.toggle("off", !on);
  badge.dataset.state = on ? "on" : "off";
}

async function start() {
  await loadStrings();
  setLang(currentLang());
  translate();
  const langButton = document.getElementById("lang");
  const label = () => (langButton.textContent = currentLang() === "zh-CN" ? "EN" : "中文");
  label();
  langButton.addEventListener("click", () => {
    setLang(LANGS.find((l) => l !== currentLang()));
    label();
    translate();
    showWho();
    showLive();
    render();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  onUnauthorized(() => app.me && signOut());
  window.addEventListener("hashchange", render);
  if (session.get() && (await signIn())) return;
  render();
}

start();
