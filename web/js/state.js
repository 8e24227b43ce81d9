// Search state <-> URL, and the Pangea query that a state stands for.

export const FILTER_FIELDS = [
  { id: 'actor', label: 'Actor' },
  { id: 'action', label: 'Action' },
  { id: 'target', label: 'Target' },
  { id: 'tenant_id', label: 'Tenant / workspace' },
  { id: 'status', label: 'Status' },
  { id: 'source', label: 'Source' },
];

export const FILTER_OPS = [
  { id: ':', label: 'contains', short: 'contains' },
  { id: '=', label: 'is exactly', short: '=' },
  { id: '!=', label: 'is not', short: '≠' },
];

// Operators of typed fields (custom schemas): ranges on integers and datetimes.
const RANGE_OPS = [
  { id: '>=', label: 'is at least', short: '≥' },
  { id: '<=', label: 'is at most', short: '≤' },
  { id: '>', label: 'is more than', short: '>' },
  { id: '<', label: 'is less than', short: '<' },
];

/** The operators a filter on a field of this schema type may use (spec §7, README "Custom fields"). */
export function opsFor(type) {
  switch (type) {
    case 'integer': return ['=', '!=', '>=', '<=', '>', '<'];
    case 'datetime': return ['=', '>=', '<=', '>', '<'];
    case 'boolean': return ['=', '!='];
    default: return [':', '=', '!='];
  }
}

export const RANGES = [
  { id: '15m', label: 'Last 15 minutes', seconds: 15 * 60 },
  { id: '1h', label: 'Last hour', seconds: 3600 },
  { id: '24h', label: 'Last 24 hours', seconds: 86400 },
  { id: '7d', label: 'Last 7 days', seconds: 7 * 86400 },
  { id: '30d', label: 'Last 30 days', seconds: 30 * 86400 },
  { id: '90d', label: 'Last 90 days', seconds: 90 * 86400 },
  { id: '1y', label: 'Last year', seconds: 365 * 86400 },
  { id: 'all', label: 'All time', seconds: null },
  { id: 'custom', label: 'Custom range…', seconds: null },
];

export const SORTABLE = new Set(['actor', 'action', 'message', 'received_at', 'source', 'status', 'target', 'timestamp']);
export const PAGE_SIZES = [20, 50, 100, 250, 1000];
export const MAX_RESULTS = 10000;

export const DEFAULTS = { q: '', range: '7d', start: '', end: '', filters: [], sort: 'received_at', order: 'desc', page: 1, size: 50, ev: '', config: '' };

export const CONFIG_ID = /^pci_[a-z0-9]{32}$/;

/**
 * The fields the search offers (filters, sorting): the standard ones, or those of the selected
 * audit config's schema (`useFields`). Each filter field is { id, label, type, description }.
 */
const STANDARD = { filterFields: FILTER_FIELDS.map((f) => ({ ...f, type: 'string' })), sortable: SORTABLE };
let active = STANDARD;

export function useFields(view) {
  active = view ?? STANDARD;
}
export function filterFields() {
  return active.filterFields;
}
export function sortable() {
  return active.sortable;
}
export function fieldInfo(id) {
  return active.filterFields.find((f) => f.id === id);
}

export function fieldLabel(id) {
  return fieldInfo(id)?.label ?? id;
}
export function opInfo(id) {
  return FILTER_OPS.find((o) => o.id === id) ?? RANGE_OPS.find((o) => o.id === id) ?? FILTER_OPS[0];
}
export function rangeInfo(id) {
  return RANGES.find((r) => r.id === id);
}

function parseFilter(s) {
  const m = /^([a-z][0-9a-z_]*)(!=|>=|<=|=|:|>|<)([\s\S]*)$/.exec(s);
  if (!m || m[3] === '') return null;
  const f = fieldInfo(m[1]);
  if (!f || !opsFor(f.type).includes(m[2])) return null;
  return { field: m[1], op: m[2], value: m[3] };
}

export function filterToParam(f) {
  return `${f.field}${f.op}${f.value}`;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z$/;

export function stateFromUrl(loc = window.location) {
  const p = new URLSearchParams(loc.search);
  const st = structuredClone(DEFAULTS);
  st.q = p.get('q') ?? '';
  const range = p.get('range');
  if (range && rangeInfo(range)) st.range = range;
  if (st.range === 'custom') {
    st.start = ISO.test(p.get('start') ?? '') ? p.get('start') : '';
    st.end = ISO.test(p.get('end') ?? '') ? p.get('end') : '';
  }
  st.filters = p.getAll('f').map(parseFilter).filter(Boolean);
  const sort = p.get('sort');
  if (sort && active.sortable.has(sort)) st.sort = sort;
  if (p.get('order') === 'asc') st.order = 'asc';
  const size = Number(p.get('size'));
  if (PAGE_SIZES.includes(size)) st.size = size;
  const page = Number(p.get('page'));
  if (Number.isInteger(page) && page >= 1) st.page = page;
  const ev = p.get('ev') ?? '';
  if (/^[0-9a-f]{64}$/.test(ev)) st.ev = ev;
  const config = p.get('config') ?? '';
  if (CONFIG_ID.test(config)) st.config = config;
  return st;
}

export function urlFromState(st) {
  const p = new URLSearchParams();
  if (st.q) p.set('q', st.q);
  if (st.range !== DEFAULTS.range) p.set('range', st.range);
  if (st.range === 'custom') {
    if (st.start) p.set('start', st.start);
    if (st.end) p.set('end', st.end);
  }
  for (const f of st.filters) p.append('f', filterToParam(f));
  if (st.sort !== DEFAULTS.sort) p.set('sort', st.sort);
  if (st.order !== DEFAULTS.order) p.set('order', st.order);
  if (st.size !== DEFAULTS.size) p.set('size', String(st.size));
  if (st.page !== 1) p.set('page', String(st.page));
  if (st.ev) p.set('ev', st.ev);
  if (st.config) p.set('config', st.config);
  const s = p.toString();
  // Relative to the UI's root (pages are one level deep: /integrity, /keys, …).
  return s ? `./?${s}` : './';
}

/** Identity of the search itself (not page or detail): a new search is needed when it changes. */
export function searchKey(st) {
  return JSON.stringify([st.q, st.range, st.start, st.end, st.filters.map(filterToParam), st.sort, st.order, st.config ?? '']);
}

export function quote(v) {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function hasTopLevelOr(q) {
  return /(^|[\s)])OR([\s(]|$)/.test(q);
}

/** The Pangea query (spec §7.2) for the free-text query plus the structured filters. */
export function buildQuery(st) {
  const parts = [];
  const q = st.q.trim();
  if (q) parts.push(st.filters.length && hasTopLevelOr(q) ? `(${q})` : q);
  const byField = new Map();
  for (const f of st.filters) {
    if (f.op === '!=') { parts.push(`-${f.field}=${quote(f.value)}`); continue; }
    // Bounds of a range all apply (AND); equal and contains filters of one field are alternatives (OR).
    if (f.op !== '=' && f.op !== ':') { parts.push(`${f.field}${f.op}${quote(f.value)}`); continue; }
    if (!byField.has(f.field)) byField.set(f.field, []);
    byField.get(f.field).push(`${f.field}${f.op}${quote(f.value)}`);
  }
  for (const terms of byField.values()) parts.push(terms.length > 1 ? `(${terms.join(' OR ')})` : terms[0]);
  return parts.join(' ');
}

/** Absolute start/end (RFC 3339, UTC) for the state's time range, computed now. */
export function timeBounds(st, now = Date.now()) {
  if (st.range === 'custom') return { start: st.start || '1970-01-01T00:00:00Z', end: st.end || undefined };
  if (st.range === 'all') return { start: '1970-01-01T00:00:00Z' };
  const r = rangeInfo(st.range);
  return { start: new Date(now - r.seconds * 1000).toISOString() };
}

/** <input type=datetime-local> value (local time) <-> ISO UTC. */
export function localInputToIso(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}
export function isoToLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
