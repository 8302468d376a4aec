// The live warning feed: open alerts in the four colours, updated from the event stream, with the
// actions the signed-in role allows (acknowledge, silence, escalate, open an incident).
import { api, qs } from "./api.js";
import { countyName, industryName, itemName, t, when } from "./i18n.js";
import { ask, failed, h, levelBadge, toast, fill } from "./ui.js";

const RANK = { blue: 0, yellow: 1, orange: 2, red: 3 };
const DISPOSITIONS = ["verified", "handled", "transferred", "false_positive"];
let alerts = new Map();
let root = null;
let ctx = null;
let showAll = false;
// how many resolved alerts "All" shows besides the open ones
const RECENT_RESOLVED = 200;

export async function show(view, route, context) {
  ctx = context;
  root = view;
  const loaded = await load();
  // a notification's link (#/feed?alert=ID) shows that alert, even resolved or older than the list
  const focus = Number(route.params.get("alert")) || null;
  const wanted = focus && !loaded.some((a) => a.id === focus) ? await one(focus) : null;
  if (!root) return; // left for another page while loading
  alerts = new Map(loaded.concat(wanted ? [wanted] : []).map((a) => [a.id, a]));
  const target = focus ? alerts.get(focus) : null;
  if (target && target.state === "resolved") showAll = true;
  draw(target ? focus : null);
  if (target) document.getElementById(`alert-${focus}`)?.scrollIntoView({ block: "center" });
}

async function one(id) {
  try {
    return await api(`/api/alerts/${id}`);
  } catch (err) {
    failed(err); // not found, or another county's: say so rather than show nothing
    return null;
  }
}

/** Every open alert (page by page, however many), and the most recently resolved ones for "All". */
async function load() {
  const out = [];
  for (const state of ["firing", "acknowledged"]) {
    for (let offset = 0; ; ) {
      const page = await api(`/api/alerts${qs({ state, limit: 500, offset })}`);
      out.push(...page.items);
      offset += page.items.length;
      if (!page.items.length || offset >= page.total) break;
    }
  }
  const resolved = await api(`/api/alerts${qs({ state: "resolved", limit: RECENT_RESOLVED })}`);
  return out.concat(resolved.items);
}

export function leave() {
  root = null;
}

export function onEvent(type, data) {
  if (!root || !type.startsWith("alert.")) return;
  alerts.set(data.id, data);
  draw(data.id);
}

function order(a, b) {
  const open = (x) => (x.state === "firing" ? 0 : x.state === "acknowledged" ? 1 : 2);
  return open(a) - open(b) || RANK[b.level] - RANK[a.level] || b.updated_at.localeCompare(a.updated_at);
}

function draw(flashId = null) {
  const list = [...alerts.values()].filter((a) => showAll || a.state !== "resolved").sort(order);
  const counts = { red: 0, orange: 0, yellow: 0, blue: 0 };
  for (const a of alerts.values()) if (a.state !== "resolved") counts[a.level] += 1;
  const toggle = h(
    "div.segmented",
    {},
    h("button", { class: showAll ? "" : "on", onclick: () => ((showAll = false), draw()) }, t("feed.open")),
    h("button", { class: showAll ? "on" : "", onclick: () => ((showAll = true), draw()) }, t("feed.all")),
  );
  const summary = h(
    "div.levelcounts",
    {},
    ["red", "orange", "yellow", "blue"].map((l) => h(`span.count.lv-${l}`, {}, `${t(`level.${l}`)} ${counts[l]}`)),
  );
  const cards = list.length ? list.map((a) => card(a, a.id === flashId)) : [h("p.muted.empty", {}, t("feed.empty"))];
  fill(root,
    h("div.pagehead", {}, h("h1", {}, t("feed.title")), summary, toggle),
    h("ul.feed", { id: "feed" }, cards),
  );
}

function scopeLine(a) {
  const parts = [t(`kind.${a.kind}`), countyName(a.region)];
  if (a.industry) parts.push(industryName(a.industry));
  if (a.item) parts.push(itemName(a.item));
  if (a.enterprise_id) parts.push(a.enterprise_id);
  return parts.join(" · ");
}

export function seriesHash(a) {
  const p = new URLSearchParams();
  if (a.region) p.set("county", a.region);
  if (a.industry) p.set("industry", a.industry);
  if (a.item) p.set("item", a.item);
  return p.toString() ? `#/series?${p}` : null;
}

function card(a, flash) {
  const acts = [];
  const mine = ctx.mayActOn(a.region);
  if (ctx.can("alerts:act") && mine && a.state === "firing") acts.push(button("ack", () => acknowledge(a)));
  if (ctx.can("silences:write") && mine && a.state !== "resolved") acts.push(button("silence", () => silence(a)));
  // the service escalates a firing alert only: an acknowledged one has its officer already
  if (ctx.can("alerts:act") && mine && a.state === "firing") acts.push(button("escalate", () => escalate(a)));
  if (ctx.can("incidents:write") && mine) acts.push(button("incident", () => openIncident(a)));
  const chart = seriesHash(a);
  const flags = [];
  if (a.inhibited_by_id) flags.push(h("span.flag", {}, t("feed.inhibited")));
  if (a.silenced_by_id) flags.push(h("span.flag", {}, t("feed.silenced")));
  if (a.tier > 0) flags.push(h("span.flag.warn", {}, t("feed.tier", { n: a.tier })));
  if (a.disposition) flags.push(h("span.flag", {}, `${t(`disp.${a.disposition}`)} · ${a.acknowledged_by}`));
  return h(
    `li.alert.lv-${a.level}.st-${a.state}${flash ? ".flash" : ""}`,
    { id: `alert-${a.id}`, dataset: { id: a.id, level: a.level, state: a.state, county: a.region || "" } },
    h(
      "div.head",
      {},
      levelBadge(a.level),
      h("span.state", {}, t(`state.${a.state}`)),
      h("span.scope", {}, scopeLine(a)),
      h("span.time", {}, `${t("feed.lastSeen")} ${when(a.last_seen)} · ${t("feed.count", { n: a.count })}`),
    ),
    h("p.summary", {}, a.summary),
    flags.length ? h("div.flags", {}, flags) : null,
    h(
      "div.actions",
      {},
      acts,
      chart ? h("a.button.ghost", { href: chart, "data-act": "chart" }, t("feed.chart")) : null,
    ),
  );
}

function button(name, fn) {
  return h("button", { type: "button", "data-act": name, onclick: fn }, t(`act.${name}`));
}

async function run(name, fn) {
  try {
    const out = await fn();
    toast(t(`act.done.${name}`), "ok");
    return out;
  } catch (err) {
    failed(err);
    return null;
  }
}

async function acknowledge(a) {
  const v = await ask(t("act.ack"), [
    { name: "disposition", label: t("act.disposition"), options: DISPOSITIONS.map((d) => [d, t(`disp.${d}`)]) },
    { name: "note", label: t("act.note"), type: "textarea" },
  ]);
  if (!v) return;
  const out = await run("ack", () =>
    api(`/api/alerts/${a.id}/ack`, { method: "POST", body: { disposition: v.disposition, note: v.note || null } }),
  );
  if (out) onEvent("alert.updated", out);
}

async function silence(a) {
  const v = await ask(t("act.silence"), [
    { name: "hours", label: t("act.hours"), type: "number", value: "4", step: "0.5" },
    { name: "reason", label: t("act.reason"), type: "textarea" },
  ]);
  if (!v) return;
  const start = new Date();
  const end = new Date(start.getTime() + Math.max(0.5, Number(v.hours) || 4) * 3600e3);
  await run("silence", () =>
    api("/api/silences", {
      method: "POST",
      body: {
        kind: a.kind, county: a.region, industry: a.industry, item: a.item, level: a.level,
        starts_at: start.toISOString(), ends_at: end.toISOString(), reason: v.reason || a.summary,
      },
    }),
  );
}

async function escalate(a) {
  const out = await run("escalate", () => api(`/api/alerts/${a.id}/escalate`, { method: "POST" }));
  if (out) onEvent("alert.updated", out);
}

async function openIncident(a) {
  const v = await ask(t("act.incident"), [{ name: "title", label: t("act.title"), value: a.summary.slice(0, 200) }]);
  if (!v) return;
  const inc = await run("incident", () =>
    api("/api/incidents", { method: "POST", body: { title: v.title || a.summary.slice(0, 200), alert_ids: [a.id] } }),
  );
  if (inc) ctx.go(`#/incident/${inc.id}`);
}
