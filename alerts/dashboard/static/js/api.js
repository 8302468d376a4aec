// The one door to the alert service's HTTP API: bearer token from sessionStorage, JSON in and out.
const KEY = "qw.token";

export const session = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, error) {
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.status = status;
    this.code = error ? error.code : null;
    this.field = error ? error.field : null;
  }
}

const listeners = new Set();
/** Called with no argument when the server refuses the token (401): the page signs out. */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  const token = session.get();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let err = null;
    try {
      err = (await res.json()).error;
    } catch {
      err = null;
    }
    if (res.status === 401) listeners.forEach((fn) => fn());
    throw new ApiError(res.status, err);
  }
  return raw ? res : res.json();
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
