// Small DOM helpers shared by the views: element builder, toast, level badge, modal form.
import { t } from "./i18n.js";

/** ``h("div.card", {onclick}, child, "text")`` — an element with classes, attributes and children. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast ${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 4000);
}

export function levelBadge(level) {
  if (!level) return h("span.badge.none", {}, "—");
  return h(`span.badge.lv-${level}`, { dataset: { level } }, t(`level.${level}`));
}

/** A small modal form; resolves with the field values, or null when cancelled. */
export function ask(title, fields) {
  return new Promise((resolve) => {
    const inputs = {};
    const rows = fields.map((f) => {
      let input;
      if (f.options) {
        input = h("select", { name: f.name }, f.options.map(([v, label]) => h("option", { value: v }, label)));
      } else if (f.type === "textarea") {
        input = h("textarea", { name: f.name, rows: 3 });
      } else {
        input = h("input", { name: f.name, type: f.type || "text", required: f.required, step: f.step });
      }
      if (f.value !== undefined) input.value = f.value;
      inputs[f.name] = input;
      return h("label.field", {}, h("span", {}, f.label), input);
    });
    const close = (value) => {
      overlay.remove();
      resolve(value);
    };
    const form = h(
      "form.modal",
      {
        onsubmit: (e) => {
          e.preventDefault();
          close(Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value])));
        },
      },
      h("h2", {}, title),
      rows,
      h(
        "div.buttons",
        {},
        h("button.ghost", { type: "button", onclick: () => close(null) }, t("act.cancel")),
        h("button.primary", { type: "submit", name: "submit" }, t("act.confirm")),
      ),
    );
    const overlay = h("div.overlay", { onclick: (e) => e.target === overlay && close(null) }, form);
    document.body.append(overlay);
    const first = form.querySelector("input, select, textarea");
    if (first) first.focus();
  });
}

export function failed(err) {
  toast(`${err.status === 403 ? t("err.forbidden") : t("err.generic")}: ${err.message}`, "error");
}

/** Replace ``node``'s children, leaving out null/false entries (optional parts of a page). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
