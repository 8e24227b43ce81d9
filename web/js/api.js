// HTTP client for the trailkeep server. The API key lives in sessionStorage only (no
// cookies) and is sent as a bearer token.

import { parseJson } from './json.js';

const KEY_STORAGE = 'trailkeep.apiKey';

export class ApiError extends Error {
  constructor(message, { status = 0, code = '', details = [] } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let unauthorizedHandler = () => {};
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export function getKey() {
  try { return sessionStorage.getItem(KEY_STORAGE); } catch { return null; }
}
export function setKey(k) { sessionStorage.setItem(KEY_STORAGE, k); }
export function clearKey() { try { sessionStorage.removeItem(KEY_STORAGE); } catch { /* ignore */ } }

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  const k = getKey();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

/** fetch() with the key; returns the Response (for streams and downloads). */
export async function fetchRaw(path, { method = 'GET', body, signal, accept } = {}) {
  const init = { method, signal, headers: headers(accept ? { Accept: accept } : {}), cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('Cannot reach the server. Check that trailkeep is running and try again.');
  }
  return res;
}

function errorFromBody(res, data) {
  if (data && typeof data === 'object') {
    if (typeof data.status === 'string' && 'summary' in data) {
      const errs = Array.isArray(data.result?.errors) ? data.result.errors : [];
      const detail = errs.map((e) => e.detail).filter(Boolean).join('; ');
      return new ApiError(detail ? `${data.summary} ${detail}` : (data.summary || data.status),
        { status: res.status, code: data.status, details: errs });
    }
    const msg = data.detail || data.title || data.message || data.error;
    if (msg) return new ApiError(String(msg), { status: res.status, code: String(data.code ?? '') });
  }
  return new ApiError(`The server answered HTTP ${res.status}.`, { status: res.status });
}

async function readJson(res) {
  const text = await res.text();
  try {
    return parseJson(text);
  } catch {
    if (!res.ok) throw new ApiError(`The server answered HTTP ${res.status}.`, { status: res.status });
    throw new ApiError(`The server sent a response that is not valid JSON (HTTP ${res.status}).`, { status: res.status });
  }
}

async function handle(res) {
  const data = await readJson(res);
  const isEnvelope = data && typeof data === 'object' && typeof data.status === 'string' && 'request_id' in data;
  if (!res.ok || (isEnvelope && data.status !== 'Success')) {
    const err = errorFromBody(res, data);
    if (res.status === 401) unauthorizedHandler(err);
    throw err;
  }
  return isEnvelope ? data.result : data;
}

export async function getJson(path, opts = {}) {
  return handle(await fetchRaw(path, opts));
}

export async function postJson(path, body, opts = {}) {
  return handle(await fetchRaw(path, { ...opts, method: 'POST', body }));
}

// ---- endpoints ----

export const whoami = (key) => {
  // Used before the key is stored: send it explicitly.
  return fetch('/api/v1/whoami', { headers: { Accept: 'application/json', Authorization: `Bearer ${key}` }, cache: 'no-store', credentials: 'omit' })
    .catch(() => { throw new ApiError('Cannot reach the server. Check that trailkeep is running and try again.'); })
    .then(async (res) => {
      if (res.status === 401 || res.status === 403) throw new ApiError('The server did not accept this API key.', { status: res.status });
      if (res.status === 404) return null; // endpoint missing: caller falls back
      const data = await readJson(res);
      if (!res.ok) throw errorFromBody(res, data);
      return data;
    });
};

// The audit config the search works on: sent as config_id with every search request when the
// key may use several configs (a key with one config sends none, as before configs existed).
let configId = '';
export function setConfigId(id) { configId = id || ''; }
/** { config_id } for query strings and bodies, or nothing. */
export function configParams() { return configId ? { config_id: configId } : {}; }

export const search = (body, opts) => postJson('/pangea/v1/search', { ...body, ...configParams() }, opts);
export const aggregate = (params, opts) => getJson(`/api/v1/aggregate?${new URLSearchParams({ ...params, ...configParams() })}`, opts);
/** The AuditSchema of a config (its id; '' for the key's own config). */
export const schema = (id) => postJson('/pangea/v1/schema', id ? { config_id: id } : {});
export const listConfigs = () => postJson('/pangea/v1beta/config/list', { size: 1000, order: 'asc', order_by: 'created_at' });
export const getConfig = (id) => postJson('/pangea/v1beta/config', { id });
export const createConfig = (body) => postJson('/pangea/v1beta/config/create', body);
export const updateConfig = (body) => postJson('/pangea/v1beta/config/update', body);
export const deleteConfig = (id) => postJson('/pangea/v1beta/config/delete', { id });
/** Events of a config over all time (the aggregation's total). */
export const configEventCount = (id) => getJson(`/api/v1/aggregate?${new URLSearchParams({ config_id: id, start: '1970-01-01T00:00:00Z', buckets: '1', top: '1' })}`);
export const integrity = () => getJson('/api/v1/integrity');
export const verifyStatus = () => getJson('/api/v1/verify');
export const startVerify = () => postJson('/api/v1/verify', undefined);
export const listKeys = () => getJson('/api/v1/keys');
export const createKey = (body) => postJson('/api/v1/keys', body);
export const retention = () => getJson('/api/v1/retention');
export const purgeNow = () => postJson('/api/v1/retention/purge', undefined);

/** DELETE /api/v1/keys/{id}: 204 on success. */
export async function revokeKey(id) {
  const res = await fetchRaw(`/api/v1/keys/${encodeURIComponent(id)}`, { method: 'DELETE' });
  if (res.status === 204) return;
  await handle(res);
  throw new ApiError(`The server answered HTTP ${res.status}.`, { status: res.status });
}
export const results = (id, limit, offset, opts) => postJson('/pangea/v1/results', { id, limit, offset, ...configParams() }, opts);
export const downloadResults = (resultId, format) => postJson('/pangea/v1/download_results', { result_id: resultId, format, ...configParams() });

const rootCache = new Map();
let publicKey = null;

/** Signed roots and the server key never change, so they are cached per page load. */
export const verifierApi = {
  getJson(path) {
    const m = /^\/api\/v1\/roots\/(\d+)$/.exec(path);
    if (!m) return getJson(path);
    if (!rootCache.has(path)) {
      const p = getJson(path).catch((e) => { rootCache.delete(path); throw e; });
      rootCache.set(path, p);
    }
    return rootCache.get(path);
  },
  getPublicKey() {
    if (!publicKey) publicKey = getJson('/api/v1/public-key').catch((e) => { publicKey = null; throw e; });
    return publicKey;
  },
};

export function resetCaches() {
  rootCache.clear();
  publicKey = null;
}
