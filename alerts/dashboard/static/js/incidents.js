// Incidents for emergency response teams: a board by state, and an incident's page with its
// timeline, tasks, members, linked warnings, enterprises and products, and its state moves.
import { api, qs } from "./api.js";
import { countyName, fromLocalInput, t, toLocalInput, when } from "./i18n.js";
import { ask, failed, h, levelBadge, toast, fill } from "./ui.js";

const STATES = ["reported", "investigating", "controlled", "resolved", "closed"];
const MOVES = {
  reported: ["investigating"],
  investigating: ["controlled"],
  controlled: ["resolved", "investigating"],
  resolved: ["closed"],
  closed: [],
};
// how many closed incidents the board shows (the most recent ones); every other state is shown whole
const RECENT_CLOSED = 100;
let root = null;
let ctx = null;
let current = null;

export async function show(view, route, context) {
  root = view;
  ctx = context;
  current = route.name === "incident" ? Number(route.id) : null;
  await (current ? detail() : board());
}

export function leave() {
  root = null;
}

export function onEvent(type, data) {
  if (!root || type !== "incident.updated") return;
  if (current === null) board();
  else if (data.id === current) detail();
}

/** Every incident not closed (page by page, however many), and the most recent closed ones. */
async function load() {
  const out = {};
  for (const state of STATES.filter((s) => s !== "closed")) {
    const items = [];
    for (let offset = 0; ; ) {
      const page = await api(`/api/incidents${qs({ state, limit: 500, offset })}`);
      items.push(...page.items);
      offset += page.items.length;
      if (!page.items.length || offset >= page.total) break;
    }
    out[state] = { items, total: items.length };
  }
  const closed = await api(`/api/incidents${qs({ state: "closed", limit: RECENT_CLOSED })}`);
  out.closed = { items: closed.items, total: closed.total };
  return out;
}

async function board() {
  const loaded = await load();
  if (!root) return;
  const columns = STATES.map((state) => {
    const { items, total } = loaded[state];
    const left = total > items.length;
    const more = left ? h("p.muted.small", { dataset: { note: "more" } }, t("inc.more", { n: items.length, total })) : null;
    return h(
      "section.column",
      { dataset: { state } },
      h("h2", {}, `${t(`istate.${state}`)} (${total})`),
      items.length
        ? items.map((i) =>
            h(
              `a.ticket.lv-${i.level}`,
              { href: `#/incident/${i.id}` },
              levelBadge(i.level),
              h("strong", {}, ` #${i.id} ${i.title}`),
              h("div.muted.small", {}, `${countyName(i.county)} · ${t("inc.commander")}: ${i.commander || "—"}`),
              h("div.muted.small", {}, when(i.updated_at)),
            ),
          )
        : h("p.muted.small", {}, t("inc.empty")),
      more,
    );
  });
  fill(root, h("div.pagehead", {}, h("h1", {}, t("inc.board"))), h("div.board", { id: "board" }, columns));
}

async function detail() {
  const inc = await api(`/api/incidents/${current}`);
  if (!root) return;
  const linked = await Promise.all(
    inc.alert_ids.map((id) => api(`/api/alerts/${id}`).catch(() => ({ id, summary: `#${id}`, level: null }))),
  );
  // a closed incident is read only: the service refuses tasks, members and links on it
  const writable = ctx.can("incidents:write") && ctx.mayActOn(inc.region) && inc.state !== "closed";
  const moves = writable
    ? MOVES[inc.state].map((s) =>
        h("button", { type: "button", "data-move": s, onclick: () => move(inc, s) }, `${t("inc.move")} ${t(`istate.${s}`)}`),
      )
    : [];
  fill(root,
    h(
      "div.pagehead",
      {},
      h("h1", { id: "incident-title" }, levelBadge(inc.level), ` #${inc.id} ${inc.title}`),
      h("span.pill", { id: "incident-state" }, t(`istate.${inc.state}`)),
    ),
    h(
      "p.muted",
      {},
      `${countyName(inc.region)} · ${t("inc.commander")}: ${inc.commander || "—"} · ${inc.created_by} · ${when(inc.created_at)}`,
    ),
    inc.summary ? h("p", {}, inc.summary) : null,
    moves.length ? h("div.actions", {}, moves) : null,
    h(
      "div.incident",
      {},
      h(
        "div.col",
        {},
        panel(t("inc.tasks"), tasks(inc, writable), writable ? addTask(inc) : null),
        panel(
          t("inc.alerts"),
          h(
            "ul.plain",
            { id: "linked-alerts" },
            linked.map((a) =>
              h("li", {}, levelBadge(a.level), " ", h("a", { href: `#/series?${seriesQuery(a)}` }, `#${a.id} ${a.summary}`)),
            ),
          ),
        ),
        panel(
          `${t("inc.enterprises")} / ${t("inc.products")}`,
          h(
            "ul.plain",
            { id: "links" },
            inc.enterprises.map((e) => h("li", {}, `${t("inc.enterprise")}: ${e}`)),
            inc.products.map((p) => h("li", {}, `${t("inc.product")}: ${p}`)),
            inc.enterprises.length + inc.products.length ? null : h("li.muted", {}, t("inc.none")),
          ),
          writable ? addLink(inc) : null,
        ),
        panel(
          t("inc.members"),
          h("ul.plain", { id: "members" }, inc.members.map((m) => h("li", {}, `${m.name} · ${memberRole(m.role)}`))),
          writable ? addMember(inc) : null,
        ),
      ),
      h(
        "div.col",
        {},
        panel(
          t("inc.timeline"),
          h(
            "ol.timeline",
            { id: "timeline" },
            inc.timeline
              .slice()
              .reverse()
              .map((e) =>
                h("li", { dataset: { kind: e.kind } }, h("time", {}, when(e.at)), h("span.actor", {}, e.actor),
                  h("span", {}, entryText(e))),
              ),
          ),
        ),
      ),
    ),
  );
}

/** A member's role: the service's own ones ("commander", "member") in the page's language, others as typed. */
function memberRole(role) {
  return role === "commander" || role === "member" ? t(`mrole.${role}`) : role;
}

/** A timeline entry in the page's language and the bureau's zone, from its kind and data; an entry
 * written before entries carried their data (or of a kind this page does not know) shows its text. */
function entryText(e) {
  const d = e.data;
  if (!d) return e.text;
  switch (e.kind) {
    case "opened":
      return t("tl.opened", { title: d.title });
    case "alert":
      return t("tl.alert", { id: d.alert_id, summary: d.summary });
    case "commander":
      return t("tl.commander", { name: d.commander });
    case "state": {
      const vars = { from: t(`istate.${d.from}`), to: t(`istate.${d.to}`), note: d.note };
      return t(d.note ? "tl.stateNote" : "tl.state", vars);
    }
    case "member":
      return t("tl.member", { name: d.name, role: memberRole(d.role) });
    case "task":
      return d.done
        ? t("tl.taskDone", { id: d.task_id, title: d.title })
        : t("tl.task", { id: d.task_id, title: d.title, owner: d.owner, due: when(d.due_at) });
    case "link":
      return t(`tl.link.${d.kind}`, { value: d.value });
    case "alert_changed": {
      const vars = { id: d.alert_id, from: t(`level.${d.from}`), to: t(`level.${d.to}`), summary: d.summary };
      if (d.change !== "fired_again") return t("tl.alertRaised", vars);
      return t(d.state === "resolved" ? "tl.alertFiredResolved" : "tl.alertFired", vars);
    }
    default:
      return e.text;
  }
}

function seriesQuery(a) {
  const p = new URLSearchParams();
  if (a.region) p.set("county", a.region);
  if (a.industry) p.set("industry", a.industry);
  if (a.item) p.set("item", a.item);
  return p.toString();
}

function panel(title, ...body) {
  return h("section.panel", {}, h("h2", {}, title), body);
}

function tasks(inc, writable) {
  if (!inc.tasks.length) return h("p.muted.small", { id: "tasks" }, t("inc.none"));
  return h(
    "ul.plain.tasks",
    { id: "tasks" },
    inc.tasks.map((k) =>
      h(
        `li${k.done ? ".done" : ""}`,
        {},
        writable && !k.done
          ? h("button.small", { type: "button", onclick: () => post(`/api/incidents/${inc.id}/tasks/${k.id}/done`, {}) }, t("inc.done"))
          : h("span", {}, k.done ? "✔ " : "• "),
        h("span.task-title", {}, ` ${k.title}`),
        h("span.muted.small", {}, ` · ${k.owner} · ${t("inc.due")} ${when(k.due_at)}`),
      ),
    ),
  );
}

function inlineForm(id, fields, submit) {
  const inputs = fields.map(([name, label, type, value]) =>
    h("input", { name, placeholder: label, "aria-label": label, type: type || "text", value: value || null, required: true }),
  );
  return h(
    "form.inline",
    {
      id,
      onsubmit: (e) => {
        e.preventDefault();
        submit(Object.fromEntries(inputs.map((i) => [i.name, i.value])));
      },
    },
    inputs,
    h("button.primary", { type: "submit" }, t("inc.add")),
  );
}

function tomorrow() {
  return toLocalInput(new Date(Date.now() + 24 * 3600e3));
}

function addTask(inc) {
  return inlineForm(
    "add-task",
    [["title", t("inc.taskTitle")], ["owner", t("inc.owner")], ["due", t("inc.due"), "datetime-local", tomorrow()]],
    (v) => post(`/api/incidents/${inc.id}/tasks`, { title: v.title, owner: v.owner, due_at: fromLocalInput(v.due).toISOString() }),
  );
}

function addMember(inc) {
  return inlineForm("add-member", [["name", t("inc.name")], ["role", t("inc.role")]], (v) =>
    post(`/api/incidents/${inc.id}/members`, v),
  );
}

function addLink(inc) {
  const kind = h("select", { name: "kind" }, h("option", { value: "enterprise" }, t("inc.enterprise")),
    h("option", { value: "product" }, t("inc.product")));
  const value = h("input", { name: "value", required: true, "aria-label": t("inc.enterprise") });
  return h(
    "form.inline",
    { id: "add-link", onsubmit: (e) => (e.preventDefault(), post(`/api/incidents/${inc.id}/links`, { kind: kind.value, value: value.value })) },
    kind,
    value,
    h("button.primary", { type: "submit" }, t("inc.add")),
  );
}

async function post(path, body) {
  try {
    await api(path, { method: "POST", body });
    await detail();
  } catch (err) {
    failed(err);
  }
}

async function move(inc, state) {
  let summary = null;
  if (state === "closed") {
    const v = await ask(t("inc.summary"), [{ name: "summary", label: t("inc.summary"), type: "textarea" }]);
    if (!v) return;
    summary = v.summary;
  }
  try {
    await api(`/api/incidents/${inc.id}/state`, { method: "POST", body: { state, summary } });
    toast(t(`istate.${state}`), "ok");
    await detail();
  } catch (err) {
    failed(err);
  }
}
