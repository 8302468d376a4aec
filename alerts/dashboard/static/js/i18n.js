// zh-CN and English strings, and the catalogue's names (counties, industries, hazard items) per language.
const LANG_KEY = "qw.lang";
export const LANGS = ["zh-CN", "en"];
let lang = LANGS.includes(localStorage.getItem(LANG_KEY)) ? localStorage.getItem(LANG_KEY) : "zh-CN";
const tables = {};
let catalogue = null;

export async function loadStrings() {
  await Promise.all(
    LANGS.map(async (l) => {
      if (!tables[l]) tables[l] = await (await fetch(`/dashboard/static/i18n/${l}.json`)).json();
    }),
  );
}

export const currentLang = () => lang;

export function setLang(l) {
  lang = l;
  localStorage.setItem(LANG_KEY, l);
  document.documentElement.lang = l;
}

/** The string for ``key`` in the current language, with its ``{name}`` slots filled in. */
export function t(key, vars = {}) {
  const s = (tables[lang] && tables[lang][key]) || (tables.en && tables.en[key]) || key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? vars[k] : `{${k}}`));
}

export function setCatalogue(c) {
  catalogue = c;
}
export const getCatalogue = () => catalogue;

function named(list, key, value) {
  if (!catalogue || value === null || value === undefined) return value ?? "";
  const hit = catalogue[list].find((x) => x[key] === value);
  return hit ? (lang === "zh-CN" ? hit.zh : hit.en) : value;
}
export const countyName = (code) => (code ? named("counties", "code", code) : t("scope.all"));
export const industryName = (slug) => named("industries", "slug", slug);
export const itemName = (name) => named("items", "name", name);

export function pct(x, digits = 1) {
  return x === null || x === undefined ? "—" : `${(100 * x).toFixed(digits)} %`;
}

/** The bureau's time zone (from the catalogue): times are shown in it, not in the browser's zone. */
const zone = () => (catalogue && catalogue.timezone) || "Asia/Shanghai";
const locale = () => (lang === "zh-CN" ? "zh-CN" : "en-GB");

export function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(locale(), {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
    timeZone: zone(),
  });
}

export function day(iso) {
  return iso ? new Date(iso).toLocaleDateString(locale(), { timeZone: zone() }) : "—";
}

/** Wall-clock fields of ``date`` in the bureau's zone. */
function fields(date) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone(), hourCycle: "h23",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(date);
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return { y: get("year"), mo: get("month"), d: get("day"), h: get("hour"), mi: get("minute"), s: get("second") };
}

/** ``date`` as a ``datetime-local`` input value (YYYY-MM-DDTHH:MM) in the bureau's zone. */
export function toLocalInput(date) {
  const f = fields(date);
  const pad = (n) => String(n).padStart(2, "0");
  return `${f.y}-${pad(f.mo)}-${pad(f.d)}T${pad(f.h)}:${pad(f.mi)}`;
}

/** A ``datetime-local`` value read as wall-clock time in the bureau's zone; the instant, as a Date. */
export function fromLocalInput(value) {
  const [d, tm] = value.split("T");
  const [y, mo, dd] = d.split("-").map(Number);
  const [hh, mi] = tm.split(":").map(Number);
  const wall = Date.UTC(y, mo - 1, dd, hh, mi);
  let at = wall;
  for (let i = 0; i < 2; i += 1) {
    const f = fields(new Date(at));
    at = wall - (Date.UTC(f.y, f.mo - 1, f.d, f.h, f.mi, f.s) - at);
  }
  return new Date(at);
}

/** Fill every ``data-i18n`` element under ``root``. */
export function translate(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((n) => {
    n.textContent = t(n.dataset.i18n);
  });
}
