// The results table: columns, the column chooser and fast row rendering.

import { h, clear, displayValue, fmtTime, relTime } from './dom.js';
import { sortable } from './state.js';

// width: column width in rem (the table uses a fixed layout, which keeps 1,000-row pages fast).
export const COLUMNS = [
  { id: 'received_at', label: 'Received', width: 9, fixed: true, get: (e) => fmtTime(e.envelope?.received_at) },
  { id: 'timestamp', label: 'Event time', width: 13, get: (e) => ev(e).timestamp },
  { id: 'actor', label: 'Actor', width: 11, get: (e) => ev(e).actor },
  { id: 'action', label: 'Action', width: 8, get: (e) => ev(e).action },
  { id: 'target', label: 'Target', width: 11, get: (e) => ev(e).target },
  { id: 'status', label: 'Status', width: 7, get: (e) => ev(e).status },
  { id: 'tenant_id', label: 'Tenant', width: 10, get: (e) => ev(e).tenant_id },
  { id: 'source', label: 'Source', width: 9, get: (e) => ev(e).source },
  { id: 'message', label: 'Message', width: 22, flex: true, get: (e) => ev(e).message },
  { id: 'event_source', label: 'Event source', width: 10, get: (e) => ev(e).event_source },
  { id: 'type', label: 'Type', width: 8, get: (e) => ev(e).type },
  { id: 'user_agent', label: 'User agent', width: 12, get: (e) => ev(e).user_agent },
  { id: 'leaf_index', label: 'Leaf', width: 5, get: (e) => e.leaf_index },
  { id: 'hash', label: 'Hash', width: 12, get: (e) => e.hash },
  { id: 'verified', label: 'Integrity', width: 7, get: () => '' },
];

const DEFAULT_VISIBLE = ['received_at', 'actor', 'action', 'target', 'status', 'tenant_id', 'message'];
const PREFS_KEY = 'trailkeep.columns';

const STANDARD = { columns: COLUMNS, defaultVisible: DEFAULT_VISIBLE, prefsKey: PREFS_KEY };
let active = STANDARD;

const WIDTHS = { integer: 7, boolean: 6, datetime: 13, text: 22, string: 11, 'string-unindexed': 11 };

/**
 * The columns of a custom config (its schema's fields, `schemaFields`): Received first, then
 * the fields in schema order (name as label, description as tooltip), then leaf, hash and
 * integrity. Visible by default: the fields marked ui_default_visible (else the first six).
 */
export function customColumns(configId, fields) {
  const firstText = fields.find((f) => f.type === 'text')?.id;
  const cols = [
    COLUMNS[0],
    ...fields.map((f) => ({
      id: f.id, label: f.label, title: f.description || null, width: WIDTHS[f.type] ?? 11, flex: f.id === firstText,
      get: (e) => ev(e)[f.id],
    })),
    ...COLUMNS.filter((c) => ['leaf_index', 'hash', 'verified'].includes(c.id) && !fields.some((f) => f.id === c.id)),
  ];
  const marked = fields.filter((f) => f.visible).map((f) => f.id);
  const defaultVisible = ['received_at', ...(marked.length ? marked : fields.slice(0, 6).map((f) => f.id))];
  return { columns: cols, defaultVisible, prefsKey: `${PREFS_KEY}.${configId}` };
}

/** Switches the table to a column set (customColumns), or back to the standard one (null). */
export function useColumns(set) {
  active = set ?? STANDARD;
}

/** The columns of the current config. */
export function columns() {
  return active.columns;
}

function ev(e) {
  const x = e?.envelope?.event;
  return x && typeof x === 'object' ? x : {};
}

export function loadVisibleColumns() {
  try {
    const saved = JSON.parse(localStorage.getItem(active.prefsKey) ?? 'null');
    if (Array.isArray(saved)) {
      const ids = saved.filter((id) => active.columns.some((c) => c.id === id));
      if (!ids.includes('received_at')) ids.unshift('received_at');
      return ids;
    }
  } catch { /* ignore */ }
  return [...active.defaultVisible];
}

export function saveVisibleColumns(ids) {
  try { localStorage.setItem(active.prefsKey, JSON.stringify(ids)); } catch { /* ignore */ }
}

/** Renders the checkboxes of the column chooser. */
export function renderColumnChooser(panel, visible, onChange) {
  const focusedId = panel.contains(document.activeElement) ? document.activeElement.id : '';
  clear(panel);
  for (const col of active.columns) {
    const id = `col-toggle-${col.id}`;
    const box = h('input', { type: 'checkbox', id, checked: visible.includes(col.id), disabled: !!col.fixed });
    box.addEventListener('change', () => {
      const next = active.columns.filter((c) => (c.id === col.id ? box.checked : visible.includes(c.id))).map((c) => c.id);
      onChange(next);
    });
    panel.append(h('label', { className: 'check', htmlFor: id }, box, col.label));
  }
  panel.append(h('button', {
    type: 'button', className: 'mini', id: 'col-reset', onClick: () => onChange([...active.defaultVisible]),
  }, 'Reset columns'));
  if (focusedId) document.getElementById(focusedId)?.focus();
}

export function renderHead(tr, visible, sort, order, onSort) {
  clear(tr);
  const cols = active.columns.filter((c) => visible.includes(c.id));
  const table = tr.closest('table');
  const hasFlex = cols.some((c) => c.flex);
  // Fixed widths; one column (Message, else the last) takes the remaining space.
  const tpl = cols.map((c, i) => (c.flex || (!hasFlex && i === cols.length - 1) ? `minmax(${c.width}rem, 1fr)` : `${c.width}rem`));
  if (table) {
    table.style.setProperty('--cols', tpl.join(' '));
    table.style.minWidth = `${cols.reduce((n, c) => n + c.width + 1.2, 0)}rem`;
  }
  cols.forEach((col) => {
    const th = h('th', { attrs: { scope: 'col', role: 'columnheader' }, className: `col-${col.id}`, title: col.title ?? null });
    if (sortable().has(col.id)) {
      const active = sort === col.id;
      if (active) th.setAttribute('aria-sort', order === 'asc' ? 'ascending' : 'descending');
      th.append(h('button', {
        type: 'button', className: 'sort', onClick: () => onSort(col.id),
        attrs: { 'aria-label': `Sort by ${col.label}${active ? (order === 'asc' ? ', now ascending' : ', now descending') : ''}` },
      }, col.label));
    } else {
      th.textContent = col.label;
    }
    tr.append(th);
  });
}

const OK_WORDS = new Set(['success', 'succeeded', 'successful', 'ok', 'allowed', 'allow', 'pass', 'passed', 'granted', 'true', 'done', 'completed']);
const BAD_WORDS = /fail|error|denied|deny|reject|forbidden|unauthori|invalid|timeout|refused|blocked/;

/**
 * The outcome of a status, as the server's timeline counts it: a number is a success when 0
 * (google.rpc OK) or 100–399 (HTTP), a failure when 1–99 or 400–599; words decide otherwise.
 */
export function outcome(status) {
  if (typeof status !== 'string') return 'other';
  if (/^[+-]?\d{1,9}$/.test(status)) {
    const c = Number(status);
    if (c === 0 || (c >= 100 && c <= 399)) return 'success';
    if ((c >= 1 && c <= 99) || (c >= 400 && c <= 599)) return 'failure';
    return 'other';
  }
  const s = status.trim().toLowerCase();
  if (!s || s.length > 64) return 'other';
  if (OK_WORDS.has(s)) return 'success';
  if (s === 'false' || BAD_WORDS.test(s)) return 'failure';
  return 'other';
}

/**
 * Builds the rows for `events` into `tbody` (replacing its content).
 * hrefFor(e) gives the detail link; verification state comes from verdicts (hash → result).
 * Returns the build+layout time in ms.
 */
export function renderRows(tbody, events, visible, { hrefFor, verdicts, selected }) {
  const t0 = performance.now();
  const cols = active.columns.filter((c) => visible.includes(c.id));
  const frag = document.createDocumentFragment();
  for (const e of events) frag.append(buildRow(e, cols, hrefFor, verdicts, selected));
  // Swapping in a fresh <tbody> detaches the old rows in one step (cheaper than removing
  // 1,000 rows one by one).
  const fresh = tbody.cloneNode(false);
  fresh.append(frag);
  tbody.replaceWith(fresh);
  void fresh.offsetHeight; // include style and layout in the measurement
  return performance.now() - t0;
}

export function buildRow(e, cols, hrefFor, verdicts, selected) {
  const tr = document.createElement('tr');
  tr.setAttribute('role', 'row');
  tr.dataset.hash = typeof e.hash === 'string' ? e.hash : '';
  if (selected && selected === e.hash) tr.className = 'selected';
  for (const col of cols) {
    const td = document.createElement('td');
    td.className = `col-${col.id}`;
    td.setAttribute('role', 'cell');
    td.setAttribute('data-label', col.label);
    if (col.id === 'received_at') {
      const a = document.createElement('a');
      a.className = 'row-link';
      a.href = hrefFor(e);
      if (typeof e.envelope?.received_at === 'string') a.append(relTime(e.envelope.received_at));
      else a.textContent = '(no time)';
      td.append(a);
    } else if (col.id === 'verified') {
      td.append(verdictBadge(verdicts?.get(e.hash)));
    } else {
      const text = displayValue(col.get(e));
      td.textContent = text;
      if (text.length > 24) td.title = text;
      if (col.id === 'status' && text) {
        const o = outcome(text);
        if (o === 'success') td.classList.add('status-ok');
        else if (o === 'failure') td.classList.add('status-bad');
      }
    }
    tr.append(td);
  }
  return tr;
}

export function verdictBadge(v) {
  if (!v) return h('span', { className: 'vbadge pending' }, '–');
  if (v === 'pending') return h('span', { className: 'vbadge pending' }, 'checking…');
  return v.ok
    ? h('span', { className: 'vbadge ok', title: 'Verified in this browser' }, '✓ Verified')
    : h('span', { className: 'vbadge bad', title: v.reason }, '✗ Failed');
}

/** Updates the Integrity cell of one row, if it is shown. */
export function updateVerdictCell(table, hash, verdict) {
  for (const tr of table.querySelectorAll('tbody tr')) {
    if (tr.dataset.hash !== hash) continue;
    const td = tr.querySelector('td.col-verified');
    if (td) td.replaceChildren(verdictBadge(verdict));
  }
}
