// County × industry grid: pass rate of the last weeks against the policy target, and the highest
// open warning level of each cell (its border); a click opens the cell's series.
import { api } from "./api.js";
import { countyName, industryName, pct, t } from "./i18n.js";
import { h, levelBadge, fill } from "./ui.js";

let root = null;
let ctx = null;

export async function show(view, _route, context) {
  root = view;
  ctx = context;
  await draw();
}

export function leave() {
  root = null;
}

export function onEvent(type) {
  if (root && type.startsWith("alert.")) draw();
}

async function draw() {
  const g = await api("/api/stats/grid?weeks=4");
  if (!root) return;
  const byKey = new Map(g.cells.map((c) => [`${c.county}|${c.industry}`, c]));
  const anyStats = g.cells.some((c) => c.tested > 0);
  const head = h(
    "tr",
    {},
    h("th.corner", {}, t("grid.county")),
    g.industries.map((i) =>
      h("th", {}, h("a", { href: `#/series?industry=${i}` }, industryName(i)), headLevel(g.industry_levels[i])),
    ),
  );
  const rows = g.counties.map((county) =>
    h(
      "tr",
      {},
      h("th.rowhead", {}, h("a", { href: `#/series?county=${county}` }, countyName(county)),
        headLevel(g.county_levels[county])),
      g.industries.map((ind) => cell(byKey.get(`${county}|${ind}`))),
    ),
  );
  const legend = h(
    "div.legend",
    {},
    ["red", "orange", "yellow", "blue"].map((l) => levelBadge(l)),
    h("span.below-sample", {}, t("grid.below")),
  );
  fill(root,
    h("div.pagehead", {}, h("h1", {}, t("grid.title")), legend),
    h("p.muted", {}, t("grid.hint", { w: g.weeks })),
    anyStats ? null : h("p.notice", {}, t("grid.noStats")),
    h("div.tablewrap", {}, h("table.grid", { id: "grid" }, h("thead", {}, head), h("tbody", {}, rows))),
  );
}

/** The level of a county-wide (row) or prefecture-wide industry (column) alert, under its name. */
function headLevel(level) {
  return level ? h(`span.headlevel.lv-${level}`, { title: t(`level.${level}`) }, t(`level.${level}`)) : null;
}

function cell(c) {
  const cls = ["cell"];
  if (c.level) cls.push(`lv-${c.level}`);
  if (c.below_target) cls.push("below");
  const go = () => ctx.go(`#/series?county=${c.county}&industry=${c.industry}`);
  return h(
    `td.${cls.join(".")}`,
    {
      tabindex: 0,
      role: "button",
      dataset: { county: c.county, industry: c.industry, level: c.level || "" },
      onclick: go,
      onkeydown: (e) => e.key === "Enter" && go(),
      title: `${countyName(c.county)} · ${industryName(c.industry)}`,
    },
    h("span.rate", {}, c.tested ? pct(c.pass_rate) : t("grid.nodata")),
    h("span.sub", {}, `${t("grid.target")} ${pct(c.target, 0)}${c.tested ? ` · n=${c.tested}` : ""}`),
    c.level ? h(`span.dot.lv-${c.level}`, { "aria-label": t(`level.${c.level}`) }) : null,
  );
}
