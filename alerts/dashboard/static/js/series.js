// One series (a county, an industry, a cell or a hazard item): weekly failure rate with its expected
// band, failed batches, the policy target's ceiling, and the points where warnings fired, with the
// evidence of each warning in a table below the chart.
import { api, qs } from "./api.js";
import { countyName, day, industryName, itemName, pct, t, when } from "./i18n.js";
import { h, levelBadge, fill } from "./ui.js";

const COLOURS = { blue: "#3b82f6", yellow: "#facc15", orange: "#fb923c", red: "#ef4444" };
let chart = null;
let root = null;
let route = null;

export async function show(view, r) {
  root = view;
  route = r;
  await draw();
}

export function leave() {
  if (chart) chart.dispose();
  chart = null;
  root = null;
  window.removeEventListener("resize", resize);
}

export function onEvent(type) {
  if (root && type.startsWith("alert.")) draw();
}

function resize() {
  if (chart) chart.resize();
}

function title(s) {
  const parts = [];
  if (s.county) parts.push(countyName(s.county));
  if (s.industry) parts.push(industryName(s.industry));
  if (s.item) parts.push(itemName(s.item));
  return parts.join(" · ");
}

async function draw() {
  const p = route.params;
  const s = await api(`/api/stats/series${qs({ county: p.get("county"), industry: p.get("industry"), item: p.get("item") })}`);
  if (!root) return;
  const box = h("div.chart", { id: "chart" });
  const trailing = s.points.some((x) => x.expected_source === "trailing");
  fill(root,
    h("div.pagehead", {}, h("h1", {}, `${t("series.title")}: ${title(s)}`),
      h("a.button.ghost", { href: "#/grid" }, t("series.back"))),
    s.points.length ? box : h("p.muted", {}, t("series.empty")),
    trailing ? h("p.muted.small", {}, t("series.source.trailing")) : null,
    evidence(s),
  );
  if (!s.points.length) return;
  if (chart) chart.dispose();
  chart = window.echarts.init(box, "dark", { renderer: "canvas" });
  chart.setOption(option(s));
  window.addEventListener("resize", resize);
}

function option(s) {
  const x = s.points.map((p) => day(p.week_start));
  const indexOfEnd = new Map(s.points.map((p, i) => [p.week_end, i]));
  const y = (v) => (v === null || v === undefined ? null : +(100 * v).toFixed(2));
  const low = s.points.map((p) => y(p.band_low));
  const width = s.points.map((p) => (p.band_low === null ? null : y(p.band_high - p.band_low)));
  const fired = s.fired
    .filter((f) => f.status === "firing" && indexOfEnd.has(f.window_end))
    .map((f) => ({
      value: [indexOfEnd.get(f.window_end), y(f.evidence.observed_rate)],
      itemStyle: { color: COLOURS[f.level], borderColor: "#fff", borderWidth: 2 },
      warning: f,
    }));
  const ceiling = s.target === null ? [] : [{ yAxis: y(1 - s.target), name: t("series.target") }];
  return {
    backgroundColor: "transparent",
    animation: false,
    textStyle: { fontSize: 14 },
    grid: { left: 56, right: 56, top: 56, bottom: 48 },
    // one line, paged on a narrow screen: wrapped onto a second line it ran into the axis names
    legend: { type: "scroll", top: 0, textStyle: { fontSize: 13 }, pageTextStyle: { color: "#cbd5e1" },
      data: [t("series.failure"), t("series.expected"), t("series.band"), t("series.failed"), t("series.fired")] },
    tooltip: {
      trigger: "axis",
      formatter: (items) => {
        const i = items[0].dataIndex;
        const pt = s.points[i];
        const lines = [
          `<b>${x[i]}</b>`,
          `${t("series.failure")}: ${pct(pt.failure_rate)} (${pt.failed}/${pt.tested})`,
          `${t("series.expected")}: ${pct(pt.expected_rate)}`,
          `${t("series.band")}: ${pct(pt.band_low)} – ${pct(pt.band_high)}`,
        ];
        for (const f of s.fired) if (f.window_end === pt.week_end && f.status === "firing") lines.push(`⚠ ${f.summary}`);
        return lines.join("<br>");
      },
    },
    xAxis: { type: "category", data: x, boundaryGap: false },
    yAxis: [
      { type: "value", name: `${t("series.failure")} %`, min: 0, splitLine: { lineStyle: { color: "#334155" } } },
      { type: "value", name: t("series.failed"), min: 0, splitLine: { show: false } },
    ],
    series: [
      { name: "band-base", type: "line", data: low, stack: "band", symbol: "none", lineStyle: { opacity: 0 },
        tooltip: { show: false } },
      { name: t("series.band"), type: "line", data: width, stack: "band", symbol: "none",
        lineStyle: { opacity: 0 }, itemStyle: { color: "rgba(148,163,184,0.6)" },
        areaStyle: { color: "rgba(148,163,184,0.30)" } },
      { name: t("series.expected"), type: "line", data: s.points.map((p) => y(p.expected_rate)), symbol: "none",
        itemStyle: { color: "#cbd5e1" }, lineStyle: { type: "dashed", color: "#cbd5e1", width: 1.5 } },
      { name: t("series.failed"), type: "bar", yAxisIndex: 1, data: s.points.map((p) => p.failed),
        itemStyle: { color: "rgba(100,116,139,0.45)" }, barMaxWidth: 18 },
      { name: t("series.failure"), type: "line", data: s.points.map((p) => y(p.failure_rate)), symbolSize: 6,
        lineStyle: { width: 3, color: "#e2e8f0" }, itemStyle: { color: "#e2e8f0" },
        // the target's label sits above the line inside the plot, at its right end: past the end
        // (ECharts' default) it ran over the right axis and off the chart
        markLine: ceiling.length ? { symbol: "none", data: ceiling,
          lineStyle: { color: "#f87171", type: "dotted", width: 2 },
          label: { formatter: t("series.target"), position: "insideEndTop", color: "#fca5a5",
            backgroundColor: "rgba(19,28,46,0.8)", padding: [2, 4], borderRadius: 3 } } : undefined },
      { name: t("series.fired"), type: "scatter", data: fired, symbolSize: 18, z: 10,
        itemStyle: { color: COLOURS.red } },
    ],
  };
}

function num(v, digits = 3) {
  return v === null || v === undefined ? "—" : Number(v).toPrecision(digits);
}

function evidence(s) {
  const rows = s.fired
    .slice()
    .reverse()
    .map((f) => {
      const e = f.evidence;
      return h(
        `tr.lv-${f.level}`,
        {},
        h("td", {}, levelBadge(f.level), " ", t(`state.${f.status === "firing" ? "firing" : "resolved"}`)),
        h("td", {}, `${day(f.window_start)} – ${day(f.window_end)}`),
        h("td", {}, `${e.failed}/${e.tested}`),
        h("td", {}, pct(e.observed_rate)),
        h("td", {}, pct(e.expected_rate)),
        h("td", {}, `${num(e.statistic)} / ${num(e.threshold)}`),
        h("td", {}, num(e.p_value, 2)),
        h("td.summary", {}, f.summary, h("div.muted.small", {}, `${f.detector} · ${when(f.raised_at)}`)),
      );
    });
  if (!rows.length) return null;
  return h(
    "section",
    {},
    h("h2", {}, t("series.evidence")),
    h(
      "div.tablewrap",
      {},
      h(
        "table.data",
        { id: "evidence" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [t("inc.level"), t("series.window"), `${t("series.failed")}/${t("series.tested")}`, t("series.observed"),
              t("series.expected"), `${t("series.statistic")} / ${t("series.threshold")}`, t("series.pvalue"), ""]
              .map((c) => h("th", {}, c)),
          ),
        ),
        h("tbody", {}, rows),
      ),
    ),
  );
}
