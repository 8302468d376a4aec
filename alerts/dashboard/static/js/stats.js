// Pass rates by county, industry and period against the policy targets, with a CSV download.
import { api, qs } from "./api.js";
import { countyName, currentLang, industryName, pct, t } from "./i18n.js";
import { failed, h, fill } from "./ui.js";

let root = null;
let period = "month";
let by = "county,industry";

export async function show(view) {
  root = view;
  await draw();
}

export function leave() {
  root = null;
}

async function draw() {
  const data = await api(`/api/stats/pass-rates${qs({ period, by })}`);
  if (!root) return;
  const select = (value, options, onchange, id) =>
    h("select", { id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  const controls = h(
    "div.controls",
    {},
    h("label.field.inline", {}, h("span", {}, t("stats.period")),
      select(period, ["week", "month", "quarter", "year"].map((p) => [p, t(`stats.period.${p}`)]),
        (v) => ((period = v), draw()), "period")),
    h("label.field.inline", {}, h("span", {}, t("stats.by")),
      select(by, [["county,industry", t("stats.by.both")], ["county", t("stats.by.county")], ["industry", t("stats.by.industry")]],
        (v) => ((by = v), draw()), "by")),
    h("button.primary", { type: "button", id: "csv", onclick: download }, t("stats.csv")),
  );
  const cols = [t("col.period")];
  if (by.includes("county")) cols.push(t("col.county"));
  if (by.includes("industry")) cols.push(t("col.industry"));
  cols.push(t("stats.tested"), t("stats.failed"), t("stats.rate"), t("stats.target"), t("stats.met"));
  const rows = data.rows.map((r) =>
    h(
      `tr${r.met === false ? ".missed" : ""}`,
      {},
      h("td", {}, r.period),
      by.includes("county") ? h("td", {}, countyName(r.county)) : null,
      by.includes("industry") ? h("td", {}, industryName(r.industry)) : null,
      h("td.num", {}, r.tested),
      h("td.num", {}, r.failed),
      h("td.num", {}, pct(r.pass_rate)),
      h("td.num", {}, pct(r.target, 1)),
      h("td", {}, r.met === null ? "—" : r.met ? `✔ ${t("stats.yes")}` : `✘ ${t("stats.no")}`),
    ),
  );
  fill(root,
    h("div.pagehead", {}, h("h1", {}, t("stats.title")), controls),
    rows.length
      ? h("div.tablewrap", {}, h("table.data", { id: "stats" },
          h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))), h("tbody", {}, rows)))
      : h("p.muted", {}, t("stats.empty")),
  );
}

async function download() {
  try {
    const res = await api(`/api/stats/pass-rates${qs({ period, by, format: "csv", lang: currentLang() })}`, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: `pass-rates-${period}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    failed(err);
  }
}
