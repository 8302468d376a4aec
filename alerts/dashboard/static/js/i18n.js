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

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(lang === "zh-CN" ? "zh-CN" : "en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  });
}

export function day(iso) {
  return iso ? new Date(iso).toLocaleDateString(lang === "zh-CN" ? "zh-CN" : "en-GB") : "—";
}

/** Fill every ``data-i18n`` element under ``root``. */
export function translate(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((n) => {
    n.textContent = t(n.dataset.i18n);
  });
}
