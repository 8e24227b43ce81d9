// Trailkeep web UI: sign-in, search with filters in the URL, the timeline and top values of
// the search, paged results, event detail with in-browser verification, live tail and export;
// the Integrity, Keys and Retention pages (pages.js) and the Configs page (configs.js). A key
// that may use several audit configs picks one in the top bar (`config` in the URL); a custom
// config's schema decides the columns, filters, top values and detail fields (schema.js).

import * as api from './api.js';
import { h, $, clear, setText, fmtInt, announce, displayValue, refreshRelativeTimes } from './dom.js';
import {
  DEFAULTS, RANGES, PAGE_SIZES, MAX_RESULTS, CONFIG_ID,
  stateFromUrl, urlFromState, searchKey, buildQuery, timeBounds, fieldLabel, opInfo,
  localInputToIso, isoToLocalInput, useFields, filterFields, fieldInfo, opsFor,
} from './state.js';
import {
  columns, useColumns, customColumns, loadVisibleColumns, saveVisibleColumns, renderColumnChooser, renderHead, renderRows, buildRow,
  updateVerdictCell,
} from './results.js';
import { pickConfig, loadSchema, viewFromSchema, forgetSchemas } from './schema.js';
import { showConfigs } from './configs.js';
import { renderDetail } from './detail.js';
import { verifySearchEvent } from './verify.js';
import { startTail } from './tail.js';
import { Timeline } from './timeline.js';
import { renderFacets, renderFacetsMessage, FACET_FIELDS } from './facets.js';
import { showIntegrity, showKeys, showRetention, stopPages, isUnlimitedAdmin } from './pages.js';

const el = (id) => $(`#${id}`);

let me = null;
let state = structuredClone(DEFAULTS);
let search = null; // { key, id, count, root, unpublishedRoot, pages, query, bounds }
let searchSeq = 0;
let inflightKey = null;
let visible = loadVisibleColumns();
let controlsReady = false;
let detailOpenedFromList = false;
let lastFocusHash = '';
let live = null;
const items = new Map(); // hash → { event, root, unpublishedRoot, source }
const verdicts = new Map(); // hash → result | 'pending'
let currentEvents = [];
let renderedKey = ''; // which page of which search the table shows, to skip needless re-renders
let timeline = null;
let agg = null; // { key, seq, data } of the timeline and top values shown
let aggSeq = 0;
let aggRefresh = null; // pending refresh after live events
let page = 'search';
let logEmpty = null; // whether the whole trail is empty (for the first-event help)
let config = null; // the audit config the search works on ({ id, name, default, vault_sign }), null: the key's own
let view = null; // a custom config's view (viewFromSchema), null: the standard fields
let configSeq = 0;

// ------------------------------------------------------------------ sign in / out ----

function showSignIn(message = '') {
  el('app').hidden = true;
  el('signin').hidden = false;
  setText(el('signin-error'), message);
  el('signin-key').value = '';
  el('signin-key').focus();
  document.title = 'Sign in · Trailkeep';
}

async function onSignIn(ev) {
  ev.preventDefault();
  const key = el('signin-key').value.trim();
  if (!key) {
    setText(el('signin-error'), 'Enter an API key.');
    return;
  }
  const btn = el('signin-submit');
  btn.disabled = true;
  btn.textContent = 'Signing in…';
  setText(el('signin-error'), '');
  try {
    await signInWith(key);
  } catch (e) {
    api.clearKey();
    setText(el('signin-error'), e.message);
    el('signin-key').focus();
  } finally {
    btn.disabled = false;
    btn.textContent = 'Sign in';
  }
}

async function signInWith(key) {
  let info = await api.whoami(key);
  api.setKey(key);
  if (info === null) {
    // No whoami endpoint: check the key with a one-event search instead.
    try {
      await api.search({ query: '', limit: 1, verbose: false });
    } catch (e) {
      if (e.status === 401) throw new api.ApiError('The server did not accept this API key.');
    }
    info = { name: '', key_id: '', scopes: [], workspaces: [], unknown: true };
  }
  me = info;
  startApp();
}

function signOut(message = '') {
  stopLive();
  api.clearKey();
  api.resetCaches();
  me = null;
  config = null;
  view = null;
  forgetSchemas();
  api.setConfigId('');
  useFields(null);
  useColumns(null);
  search = null;
  searchSeq++;
  inflightKey = null;
  renderedKey = '';
  items.clear();
  verdicts.clear();
  agg = null;
  aggSeq++;
  logEmpty = null;
  stopPages();
  clear(el('result-rows'));
  clear(el('live-rows'));
  clear(el('detail-body'));
  showSignIn(message);
}

function renderIdentity() {
  const box = el('identity');
  clear(box);
  if (me.unknown) {
    box.append(h('span', { className: 'muted' }, 'Signed in (the server does not describe keys)'));
    return;
  }
  box.append(h('span', { className: 'muted' }, 'Key'),
    h('span', { className: 'key-name', title: me.key_id ? `Key id ${me.key_id}` : null }, me.name || me.key_id || 'unnamed'));
  const scopes = Array.isArray(me.scopes) ? me.scopes : [];
  box.append(h('span', { className: 'muted' }, '· scopes'));
  for (const s of scopes) box.append(h('span', { className: `tag scope-${String(s).replace(/[^a-z]/g, '')}` }, displayValue(s)));
  if (!scopes.length) box.append(h('span', { className: 'tag' }, 'none'));
  const ws = Array.isArray(me.workspaces) ? me.workspaces : [];
  box.append(h('span', { className: 'muted' }, '· workspaces'));
  if (!ws.length) box.append(h('span', { className: 'tag' }, 'all'));
  for (const w of ws) box.append(h('span', { className: 'tag ws' }, displayValue(w)));
}

function canSearch() {
  if (me?.unknown) return true;
  const scopes = Array.isArray(me?.scopes) ? me.scopes : [];
  return scopes.includes('search') || scopes.includes('admin');
}

function startApp() {
  el('signin').hidden = true;
  el('app').hidden = false;
  renderIdentity();
  if (!controlsReady) initControls();
  const admin = isUnlimitedAdmin(me);
  el('nav-keys').hidden = !admin;
  el('nav-retention').hidden = !admin;
  el('nav-configs').hidden = !admin;
  renderConfigPicker();
  state = stateFromUrl();
  search = null;
  route();
}

// ------------------------------------------------------------------ audit configs ----

function usableConfigs() {
  return Array.isArray(me?.configs) ? me.configs : [];
}

/** Several configs: a labelled select in the top bar; one (or an older server): none. */
function renderConfigPicker() {
  const list = usableConfigs();
  const sel = el('config-select');
  clear(sel);
  for (const c of list) {
    sel.append(h('option', { value: c.id }, `${c.name || c.id}${c.default ? ' (default)' : ''}${c.vault_sign ? ' · signed' : ''}`));
  }
  el('config-picker').hidden = list.length < 2;
  if (config) sel.value = config.id;
}

/**
 * Makes `requested` (a config id from the URL, or '') the search's config: picks the config
 * (pickConfig), sends its id with every request when the key has several, and loads its view.
 * Resolves false when the schema cannot be loaded (an error with Retry is shown).
 */
async function useConfig(requested) {
  const list = usableConfigs();
  const next = pickConfig(list, requested);
  api.setConfigId(list.length > 1 && next ? next.id : '');
  if (next && el('config-select').value !== next.id) el('config-select').value = next.id;
  if ((next?.id ?? null) === (config?.id ?? null) && (view !== null) === !!(next && !next.default)) return true;
  const seq = ++configSeq;
  let nextView = null;
  if (next && !next.default) {
    try {
      nextView = viewFromSchema(await loadSchema(next.id, (id) => api.schema(list.length > 1 ? id : '')));
    } catch (e) {
      if (seq !== configSeq) return false;
      showMessage('error', `Could not load the schema of audit config “${next.name || next.id}”: ${e.message}`,
        { label: 'Retry', run: () => route() });
      return false;
    }
    if (seq !== configSeq) return false;
  }
  config = next;
  view = nextView;
  useFields(view ? { filterFields: view.filterFields, sortable: view.sortable } : null);
  useColumns(view ? customColumns(config.id, view.fields) : null);
  visible = loadVisibleColumns();
  renderedKey = '';
  search = null;
  agg = null;
  clear(el('live-rows'));
  renderFilterFields();
  renderColumnChooser(el('columns-panel'), visible, setColumns);
  return true;
}

async function onConfigSelected() {
  const id = el('config-select').value;
  if (!CONFIG_ID.test(id)) return;
  stopLive();
  const next = { ...structuredClone(DEFAULTS), q: state.q, range: state.range, start: state.start, end: state.end, size: state.size, config: id };
  if (page !== 'search') { goTo(urlFromState(next)); return; }
  if (!(await useConfig(id))) return;
  navigate(next);
  announce(`Audit config: ${config?.name ?? id}`);
}

/** After the Configs page changed the list: whoami again for the selector; schemas load afresh. */
async function refreshConfigs() {
  forgetSchemas();
  config = null;
  view = null;
  try {
    const info = await api.whoami(api.getKey());
    if (info && Array.isArray(info.configs)) me = { ...me, configs: info.configs };
  } catch { /* keep the old list */ }
  renderConfigPicker();
}

// ------------------------------------------------------------------ pages ----

const PAGES = {
  search: { view: 'view-search', title: 'Trailkeep audit trail' },
  integrity: { view: 'view-integrity', title: 'Integrity · Trailkeep', show: showIntegrity, body: 'integrity-body' },
  keys: { view: 'view-keys', title: 'API keys · Trailkeep', show: showKeys, body: 'keys-body' },
  retention: { view: 'view-retention', title: 'Retention · Trailkeep', show: showRetention, body: 'retention-body' },
  configs: { view: 'view-configs', title: 'Audit configs · Trailkeep', show: showConfigs, body: 'configs-body' },
};

function pageFromUrl() {
  const last = window.location.pathname.split('/').pop();
  return Object.hasOwn(PAGES, last) ? last : 'search';
}

/** Shows the page the URL names. */
async function route() {
  const next = pageFromUrl();
  const changed = next !== page;
  page = next;
  for (const [id, p] of Object.entries(PAGES)) {
    el(p.view).hidden = id !== page;
    const link = el(`nav-${id}`);
    if (id === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = PAGES[page].title;
  if (page === 'search') {
    stopPages();
    const seq = ++routeSeq;
    const ok = await useConfig(new URLSearchParams(window.location.search).get('config') ?? '');
    if (seq !== routeSeq || page !== 'search') return;
    if (!ok) { syncControls(); return; }
    state = stateFromUrl();
    applyState();
    return;
  }
  stopLive();
  PAGES[page].show(el(PAGES[page].body), { me, confirm: confirmDialog, onConfigsChanged: refreshConfigs });
  if (changed) el(PAGES[page].view).querySelector('h1')?.focus?.();
}

let routeSeq = 0;

function goTo(href) {
  history.pushState(null, '', href);
  route();
}

/** A modal yes/no question; resolves true when confirmed. */
function confirmDialog(title, text, okLabel = 'Confirm') {
  const d = el('confirm-dialog');
  setText(el('confirm-title'), title);
  setText(el('confirm-text'), text);
  setText(el('confirm-ok'), okLabel);
  const opener = document.activeElement;
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      resolve(d.returnValue === 'ok');
      opener?.focus?.();
    }, { once: true });
    d.returnValue = '';
    d.showModal();
    el('confirm-cancel').focus();
  });
}

// ------------------------------------------------------------------ navigation ----

function navigate(next, { replace = false } = {}) {
  state = next;
  const url = urlFromState(state);
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  applyState();
}

function patch(changes, opts) {
  navigate({ ...state, ...changes }, opts);
}

function applyState() {
  if (page !== 'search') return;
  syncControls();
  if (!canSearch()) {
    showMessage('error', 'This API key has no search scope, so it cannot list events. Sign in with a key that has the search scope.');
    el('table-wrap').hidden = true;
    return;
  }
  const key = searchKey(state);
  if (search && search.key === key) showPage();
  else if (inflightKey !== key) runSearch();
  syncDetail();
}

// ------------------------------------------------------------------ controls ----

function initControls() {
  controlsReady = true;
  const range = el('range');
  for (const r of RANGES) range.append(h('option', { value: r.id }, r.label));
  renderFilterFields();
  el('config-select').addEventListener('change', onConfigSelected);
  for (const s of PAGE_SIZES) el('page-size').append(h('option', { value: String(s) }, String(s)));

  el('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = el('q').value.trim();
    if (q === state.q && search?.key === searchKey(state)) { search = null; applyState(); return; } // refresh
    patch({ q, page: 1, ev: '' });
  });
  range.addEventListener('change', () => {
    const v = range.value;
    if (v === 'custom') {
      const start = state.range === 'custom' && state.start ? state.start : timeBounds(state).start;
      patch({ range: 'custom', start: start.replace(/\.\d+Z$/, 'Z'), end: '', page: 1, ev: '' });
      el('range-start').focus();
    } else {
      patch({ range: v, start: '', end: '', page: 1, ev: '' });
    }
  });
  for (const id of ['range-start', 'range-end']) {
    el(id).addEventListener('change', () => {
      patch({ start: localInputToIso(el('range-start').value), end: localInputToIso(el('range-end').value), page: 1, ev: '' });
    });
  }
  el('filter-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const field = el('filter-field').value;
    const type = fieldInfo(field)?.type ?? 'string';
    if (type === 'integer' || type === 'datetime') { addRangeFilter(field, type); return; }
    if (type === 'boolean') { addFilter(field, '=', el('filter-bool').value); return; }
    const value = el('filter-value').value.trim();
    if (!value) { el('filter-value').focus(); return; }
    addFilter(field, el('filter-op').value, value);
    el('filter-value').value = '';
  });
  el('filter-field').addEventListener('change', () => { syncFilterInputs(); updateSuggestions(); });
  el('filter-value').addEventListener('focus', updateSuggestions);

  el('page-first').addEventListener('click', () => gotoPage(1));
  el('page-prev').addEventListener('click', () => gotoPage(state.page - 1));
  el('page-next').addEventListener('click', () => gotoPage(state.page + 1));
  el('page-last').addEventListener('click', () => gotoPage(totalPages()));
  el('page-input').addEventListener('change', () => gotoPage(Number(el('page-input').value)));
  el('page-size').addEventListener('change', () => {
    const size = Number(el('page-size').value);
    const firstRow = (state.page - 1) * state.size;
    patch({ size, page: Math.floor(firstRow / size) + 1 });
  });

  el('signout').addEventListener('click', () => signOut('Signed out.'));
  el('home-link').addEventListener('click', (ev) => {
    ev.preventDefault();
    if (page !== 'search') goTo('./');
    navigate(structuredClone(DEFAULTS));
  });
  for (const a of document.querySelectorAll('.pages-nav a')) {
    a.addEventListener('click', (ev) => {
      if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      if (a.dataset.page === 'search') goTo(urlFromState(state));
      else if (a.dataset.page !== page) goTo(a.getAttribute('href'));
    });
  }
  timeline = new Timeline({
    section: el('timeline'), chart: el('timeline-chart'), axis: el('timeline-axis'), rows: el('timeline-rows'),
    summary: el('timeline-summary'), message: el('timeline-message'),
  }, (start, end) => {
    patch({ range: 'custom', start, end, page: 1, ev: '' });
    announce('Time range narrowed');
  });
  el('timeline-zoom-out').addEventListener('click', zoomOut);
  el('facets-toggle').addEventListener('click', () => {
    const open = el('facets-toggle').getAttribute('aria-expanded') !== 'true';
    setFacetsOpen(open);
    try { localStorage.setItem('trailkeep.facets', open ? 'open' : 'closed'); } catch { /* ignore */ }
  });
  let saved = null;
  try { saved = localStorage.getItem('trailkeep.facets'); } catch { /* ignore */ }
  setFacetsOpen(saved ? saved === 'open' : !window.matchMedia('(max-width: 640px)').matches);
  setInterval(() => { if (!el('app').hidden) refreshRelativeTimes(); }, 30_000);
  el('detail-close').addEventListener('click', closeDetail);
  el('live-toggle').addEventListener('click', () => (live ? stopLive() : startLive()));
  el('live-pause').addEventListener('click', togglePause);
  el('verify-page').addEventListener('click', verifyPage);
  for (const b of el('export-menu').querySelectorAll('button[data-format]')) {
    b.addEventListener('click', () => { el('export-menu').open = false; exportAs(b.dataset.format); });
  }
  renderColumnChooser(el('columns-panel'), visible, setColumns);
  for (const m of [el('columns-menu'), el('export-menu')]) {
    m.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { m.open = false; m.querySelector('summary').focus(); ev.stopPropagation(); } });
  }
  document.addEventListener('click', (ev) => {
    for (const m of [el('columns-menu'), el('export-menu')]) if (m.open && !m.contains(ev.target)) m.open = false;
  });

  const table = el('results-table');
  table.addEventListener('click', onTableClick);
  table.addEventListener('keydown', onTableKey);
  window.addEventListener('popstate', () => { detailOpenedFromList = false; route(); });
  document.addEventListener('keydown', (ev) => {
    if (el('app').hidden || el('confirm-dialog').open || page !== 'search') return;
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName ?? '') || document.activeElement?.isContentEditable;
    const openMenu = [el('columns-menu'), el('export-menu')].find((m) => m.open);
    const plain = !ev.altKey && !ev.ctrlKey && !ev.metaKey;
    if (ev.key === 'Escape' && openMenu) { openMenu.open = false; openMenu.querySelector('summary').focus(); }
    else if (ev.key === 'Escape' && state.ev && !el('detail').hidden) { ev.preventDefault(); closeDetail(); }
    else if (ev.key === '/' && !typing && plain) { ev.preventDefault(); el('q').focus(); }
    else if ((ev.key === 'j' || ev.key === 'k') && !typing && plain && !openMenu) { ev.preventDefault(); moveRow(ev.key === 'j' ? 1 : -1); }
  });
}

/** j/k: the next or previous event; with the detail open, that event's detail. */
function moveRow(step) {
  const links = [...el('results-table').querySelectorAll('tbody tr a.row-link')];
  if (!links.length) return;
  const focused = links.indexOf(document.activeElement);
  const selected = state.ev ? links.findIndex((a) => a.closest('tr').dataset.hash === state.ev) : -1;
  const cur = focused >= 0 ? focused : selected;
  const next = links[cur < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, cur + step))];
  if (state.ev && !el('detail').hidden) {
    const hash = next.closest('tr').dataset.hash;
    if (hash !== state.ev) {
      lastFocusHash = hash;
      patch({ ev: hash }, { replace: true });
    }
  }
  next.focus();
  next.closest('tr').scrollIntoView({ block: 'nearest' });
}

function setFacetsOpen(open) {
  el('facets-toggle').setAttribute('aria-expanded', String(open));
  el('facets-toggle').textContent = open ? 'Hide' : 'Show';
  el('facets-body').hidden = !open;
  el('facets').classList.toggle('collapsed', !open);
  el('workspace').classList.toggle('facets-collapsed', !open);
}

/** Three times the current window, centred on it, not past now. */
function zoomOut() {
  const b = timeBounds(state);
  const s = Date.parse(b.start);
  const e = b.end ? Date.parse(b.end) : Date.now();
  const span = Math.max(e - s, 60_000);
  const end = Math.min(Date.now(), e + span);
  const start = Math.max(0, s - span);
  patch({ range: 'custom', start: new Date(start).toISOString(), end: end >= Date.now() - 1000 ? '' : new Date(end).toISOString(), page: 1, ev: '' });
}

function syncControls() {
  el('q').value = state.q;
  el('range').value = state.range;
  const custom = state.range === 'custom';
  el('custom-range').hidden = !custom;
  el('custom-range-end').hidden = !custom;
  if (custom) {
    el('range-start').value = isoToLocalInput(state.start);
    el('range-end').value = isoToLocalInput(state.end);
  }
  el('page-size').value = String(state.size);
  el('timeline-zoom-out').hidden = state.range !== 'custom';
  renderChips();
  renderHead(el('results-head'), visible, state.sort, state.order, onSort);
}

function renderChips() {
  const box = el('chips');
  clear(box);
  if (state.range === 'custom') {
    const from = state.start ? state.start.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : 'the beginning';
    const to = state.end ? state.end.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : 'now';
    box.append(chip(`Time: ${from} → ${to}`, null, 'Remove the custom time range', () => patch({ range: DEFAULTS.range, start: '', end: '', page: 1, ev: '' })));
  }
  state.filters.forEach((f, idx) => {
    const op = opInfo(f.op);
    box.append(chip(`${fieldLabel(f.field)} ${op.short} `, f.value, `Remove filter ${fieldLabel(f.field)} ${op.label} ${f.value}`, () => {
      const filters = state.filters.filter((_, k) => k !== idx);
      patch({ filters, page: 1, ev: '' });
      el('filter-value').focus();
    }));
  });
  if (state.filters.length + (state.range === 'custom' ? 1 : 0) > 1) {
    box.append(h('button', {
      type: 'button', className: 'chip-clear ghost',
      onClick: () => { patch({ filters: [], range: DEFAULTS.range, start: '', end: '', page: 1, ev: '' }); el('q').focus(); },
    }, 'Clear all'));
  }
}

function chip(fieldText, value, removeLabel, onRemove) {
  return h('span', { className: 'chip' },
    h('span', { className: 'chip-text', title: value ?? fieldText },
      h('span', { className: 'chip-field' }, fieldText), value === null ? null : value),
    h('button', { type: 'button', onClick: onRemove, attrs: { 'aria-label': removeLabel } }, '×'));
}

function addFilter(field, op, value) {
  if (state.filters.some((f) => f.field === field && f.op === op && f.value === value)) return;
  patch({ filters: [...state.filters, { field, op, value }], page: 1, ev: '' });
  announce(`Filter added: ${fieldLabel(field)} ${opInfo(op).label} ${value}`);
}

/** The field list of "add filter": the standard fields, or the config's searchable fields. */
function renderFilterFields() {
  const sel = el('filter-field');
  const keep = sel.value;
  clear(sel);
  for (const f of filterFields()) sel.append(h('option', { value: f.id, title: f.description || null }, f.label));
  if (filterFields().some((f) => f.id === keep)) sel.value = keep;
  syncFilterInputs();
}

/** Typed inputs: contains/exact for strings and text, min/max for integers and datetimes, true/false for booleans. */
function syncFilterInputs() {
  const f = fieldInfo(el('filter-field').value);
  const type = f?.type ?? 'string';
  const ranged = type === 'integer' || type === 'datetime';
  el('filter-op-field').hidden = ranged || type === 'boolean';
  el('filter-value-field').hidden = ranged || type === 'boolean';
  el('filter-min-field').hidden = !ranged;
  el('filter-max-field').hidden = !ranged;
  el('filter-bool-field').hidden = type !== 'boolean';
  const ops = el('filter-op');
  const wanted = opsFor(type).filter((o) => [':', '=', '!='].includes(o));
  if ([...ops.options].map((o) => o.value).join() !== wanted.join()) {
    clear(ops);
    for (const o of wanted) ops.append(h('option', { value: o }, opInfo(o).label));
  }
  if (ranged) {
    const kind = type === 'integer' ? 'number' : 'datetime-local';
    for (const [id, word] of [['filter-min', type === 'integer' ? 'Minimum' : 'From'], ['filter-max', type === 'integer' ? 'Maximum' : 'To']]) {
      const input = el(id);
      if (input.type !== kind) { input.value = ''; input.type = kind; }
      if (kind === 'number') input.step = '1';
      input.placeholder = type === 'integer' ? word.toLowerCase().slice(0, 3) : '';
      setText(el(`${id}-label`), `${word} ${f.label}`);
    }
  }
}

/** Min and/or max of an integer or datetime field → field>=min, field<=max (field=v when equal). */
function addRangeFilter(field, type) {
  const read = (id) => {
    const v = el(id).value.trim();
    if (!v) return '';
    return type === 'integer' ? (/^-?\d+$/.test(v) ? v : null) : localInputToIso(v).replace(/\.000Z$/, 'Z');
  };
  const min = read('filter-min');
  const max = read('filter-max');
  if (min === null || max === null) { setText(el('live-status'), 'Enter whole numbers.'); el('filter-min').focus(); return; }
  if (!min && !max) { el('filter-min').focus(); return; }
  const add = [];
  if (min && max && min === max) add.push({ field, op: '=', value: min });
  else {
    if (min) add.push({ field, op: '>=', value: min });
    if (max) add.push({ field, op: '<=', value: max });
  }
  const fresh = add.filter((n) => !state.filters.some((f) => f.field === n.field && f.op === n.op && f.value === n.value));
  el('filter-min').value = '';
  el('filter-max').value = '';
  if (!fresh.length) return;
  patch({ filters: [...state.filters, ...fresh], page: 1, ev: '' });
  announce(`Filter added: ${fresh.map((n) => `${fieldLabel(field)} ${opInfo(n.op).label} ${n.value}`).join(' and ')}`);
}

function updateSuggestions() {
  const field = el('filter-field').value;
  const values = new Set();
  if (field === 'tenant_id' && Array.isArray(me?.workspaces)) for (const w of me.workspaces) values.add(String(w));
  for (const e of currentEvents) {
    const v = e?.envelope?.event?.[field];
    if (typeof v === 'string' && v && values.size < 60) values.add(v);
  }
  const list = el('filter-suggestions');
  clear(list);
  for (const v of [...values].sort()) list.append(h('option', { value: v }));
}

function onSort(col) {
  const order = state.sort === col ? (state.order === 'desc' ? 'asc' : 'desc') : (col === 'received_at' || col === 'timestamp' ? 'desc' : 'asc');
  patch({ sort: col, order, page: 1 });
}

function setColumns(ids) {
  visible = columns().filter((c) => c.fixed || ids.includes(c.id)).map((c) => c.id);
  saveVisibleColumns(visible);
  renderedKey = '';
  renderColumnChooser(el('columns-panel'), visible, setColumns);
  renderHead(el('results-head'), visible, state.sort, state.order, onSort);
  if (search) showPage();
  rerenderLiveRows();
}

// ------------------------------------------------------------------ search & pages ----

function showMessage(kind, text, action) {
  const box = el('results-message');
  clear(box);
  box.className = `message ${kind}`;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  box.append(h('p', null, text));
  if (action) box.append(h('button', { type: 'button', onClick: action.run }, action.label));
  box.hidden = false;
}

function hideMessage() {
  el('results-message').hidden = true;
}

function setBusy(busy) {
  el('results-table').setAttribute('aria-busy', busy ? 'true' : 'false');
  el('results-region').classList.toggle('busy', busy);
}

async function runSearch() {
  const seq = ++searchSeq;
  const key = searchKey(state);
  const query = buildQuery(state);
  const bounds = timeBounds(state);
  search = null;
  renderedKey = '';
  inflightKey = key;
  currentEvents = [];
  if (live) restartLive();
  clear(el('live-rows'));
  setText(el('result-count'), 'Searching…');
  el('table-wrap').hidden = false;
  if (state.range === 'custom' && state.start && state.end && state.start > state.end) {
    inflightKey = null;
    aggSeq++;
    agg = null;
    timeline.error('the time range is empty', () => {});
    renderFacetsMessage(el('facets-body'), 'No events: the time range is empty.');
    clear(el('result-rows'));
    setText(el('result-count'), 'Results');
    showMessage('error', 'The time range is empty: “From” is after “To”.');
    updatePager(0);
    return;
  }
  showMessage('loading', 'Searching…');
  setBusy(true);
  runAggregate(query, bounds);
  const body = {
    query, start: bounds.start, limit: state.size, max_results: MAX_RESULTS,
    order: state.order, order_by: state.sort, verbose: true,
  };
  if (bounds.end) body.end = bounds.end;
  try {
    const res = await api.search(body);
    if (seq !== searchSeq) return;
    inflightKey = null;
    if (!res || !Array.isArray(res.events) || typeof res.count !== 'number') throw new api.ApiError('The server sent a search result without events or count.');
    search = {
      key, id: res.id, count: res.count, root: res.root ?? null, unpublishedRoot: res.unpublished_root ?? null,
      pages: new Map([[`0:${state.size}`, res.events]]), query, bounds,
    };
    remember(res.events, search);
    showPage();
    syncDetail();
  } catch (e) {
    if (seq !== searchSeq) return;
    inflightKey = null;
    setBusy(false);
    clear(el('result-rows'));
    setText(el('result-count'), 'Results');
    updatePager(0);
    const hint = e.code === 'ValidationError' ? 'Check the query syntax. ' : '';
    showMessage('error', `Search failed: ${hint}${e.message}`, { label: 'Retry', run: () => { search = null; applyState(); } });
    syncDetail();
  }
}

// ------------------------------------------------------------------ timeline & top values ----

/** Counts the search's events per time bucket and its top values (GET /api/v1/aggregate). */
async function runAggregate(query, bounds, { quiet = false } = {}) {
  const seq = ++aggSeq;
  if (!quiet) {
    timeline.loading();
    el('facets').setAttribute('aria-busy', 'true');
    if (!agg) renderFacetsMessage(el('facets-body'), 'Counting…');
  }
  const width = el('timeline-chart').clientWidth || 800;
  const params = { query, start: bounds.start, buckets: String(Math.max(12, Math.min(120, Math.floor(width / 14)))), top: '8' };
  if (bounds.end) params.end = bounds.end;
  const t0 = performance.now();
  try {
    const data = await api.aggregate(params);
    if (seq !== aggSeq) return;
    const t1 = performance.now();
    agg = { data };
    timeline.render(data);
    renderFacets(el('facets-body'), data, {
      onInclude: (f, v) => addFilter(f, '=', v),
      onExclude: (f, v) => addFilter(f, '!=', v),
    }, view ? view.facetFields : FACET_FIELDS);
    void el('workspace').offsetHeight; // include style and layout in the measurement
    el('facets').setAttribute('aria-busy', 'false');
    el('timeline').dataset.fetchMs = (t1 - t0).toFixed(1);
    el('timeline').dataset.renderMs = (performance.now() - t1).toFixed(1);
    performance.mark?.('trailkeep:aggregate-rendered');
  } catch (e) {
    if (seq !== aggSeq) return;
    agg = null;
    el('facets').setAttribute('aria-busy', 'false');
    const retry = () => runAggregate(buildQuery(state), timeBounds(state));
    timeline.error(e.message, retry);
    renderFacetsMessage(el('facets-body'), `Could not count the top values: ${e.message}`, retry);
  }
}

/** New live events: count again (at most every 2 s). */
function scheduleAggRefresh() {
  if (aggRefresh) return;
  aggRefresh = setTimeout(() => {
    aggRefresh = null;
    if (live && page === 'search' && search) runAggregate(buildQuery(state), timeBounds(state), { quiet: true });
  }, 2000);
}

/** No events in an unfiltered search: if the whole trail is empty, how to send a first event. */
async function showNoEvents() {
  const wider = state.range !== 'all'
    ? { label: 'Show all time', run: () => patch({ range: 'all', start: '', end: '', page: 1, ev: '' }) }
    : null;
  showMessage('empty', 'No events in this time range yet. Try a wider time range.', wider);
  if (logEmpty === null) {
    try {
      logEmpty = (await api.integrity()).events === 0;
    } catch {
      return;
    }
  }
  if (!logEmpty || search?.count !== 0) return;
  const box = el('results-message');
  clear(box);
  box.className = 'message empty onboarding';
  box.setAttribute('role', 'status');
  const origin = window.location.origin;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const h2o = `curl -s -X POST "${origin}/v1/events?eventId=$(python3 -c 'import uuid;print(uuid.uuid4())')" \\
  -H "Authorization: Bearer $TRAILKEEP_KEY" -H 'Content-Type: application/json' \\
  -d '{"eventTime":"${now}","eventSource":"my-service","action":"actions/things/CREATE","readOnly":false,
       "principal":"users/alice","sourceIpAddress":"203.0.113.7","resource":"//my-service/workspaces/w1/things/t1",
       "metadata":{"message":"my first event"}}'`;
  const pangea = `curl -s -X POST ${origin}/pangea/v1/log \\
  -H "Authorization: Bearer $TRAILKEEP_KEY" -H 'Content-Type: application/json' \\
  -d '{"event":{"message":"my first event","actor":"alice","action":"login","status":"success"}}'`;
  const block = (title, text, id) => h('div', { className: 'snippet' },
    h('h3', null, title),
    h('pre', { className: 'code', id, tabIndex: 0 }, text),
    h('button', {
      type: 'button', className: 'mini', attrs: { 'aria-label': `Copy the ${title} command` },
      onClick: async (ev) => {
        try { await navigator.clipboard.writeText(text); ev.target.textContent = 'Copied'; } catch { ev.target.textContent = 'Select the text to copy it'; }
      },
    }, 'Copy'));
  box.append(
    h('h2', null, 'This audit trail has no events yet'),
    h('p', null, 'Send a first one through either API, with an API key that has the ingest scope in ', h('code', null, 'TRAILKEEP_KEY'), ' (the admin key printed at the first start works):'),
    block('H2O Audit Trail', h2o, 'first-event-h2o'),
    block('Pangea Secure Audit Log', pangea, 'first-event-pangea'),
    h('button', { type: 'button', onClick: () => { logEmpty = null; search = null; applyState(); } }, 'Search again'));
}

function remember(events, ctx, source = 'search') {
  for (const e of events) {
    if (e && typeof e.hash === 'string') items.set(e.hash, { event: e, root: ctx?.root ?? null, unpublishedRoot: ctx?.unpublishedRoot ?? null, source });
  }
}

function totalPages() {
  return search ? Math.max(1, Math.ceil(search.count / state.size)) : 1;
}

function gotoPage(p) {
  const page = Math.min(Math.max(1, Math.floor(p) || 1), totalPages());
  if (page !== state.page) patch({ page });
  else el('page-input').value = String(page);
}

async function fetchPage(offset, size) {
  const k = `${offset}:${size}`;
  if (search.pages.has(k)) return search.pages.get(k);
  const s = search;
  const res = await api.results(s.id, size, offset);
  const events = Array.isArray(res?.events) ? res.events : [];
  s.pages.set(k, events);
  remember(events, { root: res.root ?? s.root, unpublishedRoot: res.unpublished_root ?? s.unpublishedRoot });
  return events;
}

async function showPage() {
  const s = search;
  const pages = totalPages();
  if (state.page > pages) { patch({ page: pages }, { replace: true }); return; }
  const offset = (state.page - 1) * state.size;
  updatePager(s.count);
  setCount(s.count);
  let events;
  if (!s.pages.has(`${offset}:${state.size}`)) {
    setBusy(true);
    showMessage('loading', `Loading page ${fmtInt(state.page)}…`);
  }
  try {
    events = await fetchPage(offset, state.size);
  } catch (e) {
    if (s !== search) return;
    setBusy(false);
    if (e.code === 'NotFound') {
      showMessage('error', 'This search has expired on the server.', { label: 'Search again', run: () => { search = null; applyState(); } });
    } else {
      showMessage('error', `Could not load the page: ${e.message}`, { label: 'Retry', run: () => showPage() });
    }
    return;
  }
  if (s !== search || offset !== (state.page - 1) * state.size) return;
  setBusy(false);
  currentEvents = events;
  if (s.count === 0) {
    clear(el('result-rows'));
    const filtered = state.q || state.filters.length;
    if (filtered) showMessage('empty', 'No events match this search. Try a wider time range or remove a filter.');
    else showNoEvents();
  } else {
    hideMessage();
  }
  const key = `${s.id}|${offset}|${state.size}|${visible.join(',')}`;
  if (key === renderedKey) return; // same rows already shown (e.g. only the detail changed)
  renderedKey = key;
  const ms = renderRows(el('result-rows'), events, visible, { hrefFor, verdicts, selected: state.ev });
  const table = el('results-table');
  table.dataset.renderMs = ms.toFixed(1);
  table.dataset.rows = String(events.length);
  performance.mark?.('trailkeep:rows-rendered', { detail: { rows: events.length, ms } });
  // Warm the next page so that paging forward is instant.
  if (state.page < pages) {
    const next = state.page * state.size;
    setTimeout(() => { if (s === search) fetchPage(next, state.size).catch(() => {}); }, 150);
  }
}

function setCount(count) {
  let text;
  if (count >= MAX_RESULTS) text = `${fmtInt(MAX_RESULTS)}+ events (the newest ${fmtInt(MAX_RESULTS)} are listed; narrow the search to see others)`;
  else text = `${fmtInt(count)} ${count === 1 ? 'event' : 'events'}`;
  setText(el('result-count'), text);
}

function updatePager(count) {
  const pages = count ? totalPages() : 1;
  const page = Math.min(state.page, pages);
  el('page-input').value = String(page);
  el('page-input').max = String(pages);
  setText(el('page-total'), `of ${fmtInt(pages)}`);
  el('page-first').disabled = page <= 1;
  el('page-prev').disabled = page <= 1;
  el('page-next').disabled = page >= pages;
  el('page-last').disabled = page >= pages;
  el('verify-page').disabled = !count;
}

function hrefFor(e) {
  return urlFromState({ ...state, ev: typeof e.hash === 'string' ? e.hash : '' });
}

// ------------------------------------------------------------------ table interaction ----

function onTableClick(ev) {
  const link = ev.target.closest('a.row-link');
  if (link && (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0)) return; // new tab
  const tr = ev.target.closest('tbody tr');
  if (!tr || !tr.dataset.hash) return;
  if (window.getSelection()?.toString() && !link) return; // selecting text
  ev.preventDefault();
  openDetail(tr.dataset.hash);
}

function onTableKey(ev) {
  if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') return;
  const link = ev.target.closest?.('a.row-link');
  if (!link) return;
  const links = [...el('results-table').querySelectorAll('a.row-link')];
  const i = links.indexOf(link);
  const next = links[i + (ev.key === 'ArrowDown' ? 1 : -1)];
  if (next) { ev.preventDefault(); next.focus(); }
}

// ------------------------------------------------------------------ detail ----

function openDetail(hash) {
  lastFocusHash = hash;
  detailOpenedFromList = true;
  patch({ ev: hash });
  el('detail').scrollTop = 0;
  // Phones scroll the page to the detail; wider screens keep the list where it is.
  el('detail').focus({ preventScroll: !window.matchMedia('(max-width: 640px)').matches });
}

function closeDetail() {
  if (detailOpenedFromList) {
    detailOpenedFromList = false;
    history.back();
  } else {
    patch({ ev: '' });
  }
}

function syncDetail() {
  const panel = el('detail');
  const ws = el('workspace');
  for (const tr of el('results-table').querySelectorAll('tbody tr')) tr.classList.toggle('selected', !!state.ev && tr.dataset.hash === state.ev);
  if (!state.ev) {
    if (!panel.hidden) {
      panel.hidden = true;
      ws.classList.remove('with-detail');
      const row = lastFocusHash && el('results-table').querySelector(`tbody tr[data-hash="${lastFocusHash}"] a.row-link`);
      if (row) row.focus();
    }
    return;
  }
  panel.hidden = false;
  ws.classList.add('with-detail');
  const body = el('detail-body');
  const item = items.get(state.ev);
  if (panel.dataset.hash === state.ev && item && body.childElementCount) return;
  clear(body);
  if (!item) {
    panel.dataset.hash = '';
    body.append(h('p', { className: 'message' + (search ? ' empty' : ' loading') },
      search ? 'This event is not in the loaded results. It may be outside the current search or time range.' : 'Loading…'));
    return;
  }
  panel.dataset.hash = state.ev;
  renderDetail(body, item, {
    fields: view?.fields ?? null,
    verdict: verdicts.get(state.ev),
    onVerify: verifyItem,
    onFilter: (field, value) => addFilter(field, '=', value),
  });
}

/**
 * Live events may arrive without a membership proof. Fetch one with a search pinned to the
 * event's receive time (start and end are inclusive), and keep the root of that search.
 */
async function withProof(item) {
  const se = item.event;
  if (se.membership_proof !== undefined && (item.root || Number.isInteger(se.leaf_index))) return item;
  const at = se.envelope?.received_at;
  if (typeof at !== 'string') return item;
  const res = await api.search({ query: '', start: at, end: at, limit: 20, max_results: 20, verbose: true });
  // (api.search sends the config's config_id: the event is one of its events)
  const found = (res?.events ?? []).find((e) => e.hash === se.hash);
  if (!found) return item;
  const upgraded = { ...item, event: found, root: res.root ?? null, unpublishedRoot: res.unpublished_root ?? null };
  items.set(se.hash, upgraded);
  return upgraded;
}

async function verifyItem(item) {
  const hash = item.event.hash;
  verdicts.set(hash, 'pending');
  updateVerdictCell(el('results-table'), hash, 'pending');
  let res;
  try {
    try {
      item = await withProof(item);
    } catch { /* verify what we have; the verifier reports the missing proof */ }
    res = await verifySearchEvent({ event: item.event, root: item.root, unpublishedRoot: item.unpublishedRoot, api: api.verifierApi });
  } catch (e) {
    res = { ok: false, reason: e.message || String(e), checks: [] };
  }
  verdicts.set(hash, res);
  updateVerdictCell(el('results-table'), hash, res);
  return res;
}

async function verifyPage() {
  const btn = el('verify-page');
  if (!visible.includes('verified')) setColumns([...visible, 'verified']);
  const list = [...el('results-table').querySelectorAll('tbody tr')].map((tr) => items.get(tr.dataset.hash)).filter(Boolean);
  btn.disabled = true;
  btn.textContent = `Verifying 0/${list.length}…`;
  let done = 0;
  let failed = 0;
  const queue = [...list];
  const worker = async () => {
    while (queue.length) {
      const it = queue.shift();
      const r = await verifyItem(it);
      done++;
      if (!r.ok) failed++;
      btn.textContent = `Verifying ${done}/${list.length}…`;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  btn.textContent = 'Verify page';
  btn.disabled = false;
  const msg = failed ? `${failed} of ${list.length} events FAILED verification` : `All ${list.length} events on this page verified`;
  setText(el('live-status'), msg);
  announce(msg);
}

// ------------------------------------------------------------------ live tail ----

function startLive() {
  if (state.range === 'custom' && state.end) {
    showMessage('error', 'Live tail shows new events, so it needs a time range that ends now. Pick a preset range first.');
    return;
  }
  live = { paused: false, buffer: [], shown: 0, tail: null };
  el('live-toggle').setAttribute('aria-pressed', 'true');
  el('live-pause').hidden = false;
  el('live-pause').setAttribute('aria-pressed', 'false');
  el('live-pause').textContent = 'Pause';
  connectLive();
}

function connectLive() {
  const l = live;
  l.tail = startTail(buildQuery(state), {
    onEvent: (se) => {
      if (live !== l || !se || typeof se.hash !== 'string') return;
      remember([se], null, 'live');
      if (l.paused) {
        l.buffer.push(se);
        setText(el('live-status'), `Paused · ${fmtInt(l.buffer.length)} new waiting`);
      } else {
        showLive(se);
      }
    },
    onStatus: (text, kind) => {
      if (live !== l) return;
      if (l.paused && kind === 'live') return;
      setText(el('live-status'), kind === 'live' && l.shown ? `Live · ${fmtInt(l.shown)} new` : text);
    },
    onError: (e) => {
      if (live !== l) return;
      stopLive();
      setText(el('live-status'), e.message);
    },
  });
}

function restartLive() {
  if (!live) return;
  live.tail.stop();
  live.buffer = [];
  live.shown = 0;
  connectLive();
}

function stopLive() {
  if (!live) return;
  live.tail?.stop();
  live = null;
  el('live-toggle').setAttribute('aria-pressed', 'false');
  el('live-pause').hidden = true;
  setText(el('live-status'), '');
}

function togglePause() {
  if (!live) return;
  live.paused = !live.paused;
  const b = el('live-pause');
  b.setAttribute('aria-pressed', String(live.paused));
  b.textContent = live.paused ? 'Resume' : 'Pause';
  if (!live.paused) {
    const waiting = live.buffer;
    live.buffer = [];
    for (const se of waiting) showLive(se);
    setText(el('live-status'), `Live · ${fmtInt(live.shown)} new`);
  } else {
    setText(el('live-status'), 'Paused');
  }
}

const LIVE_MAX = 500;

function showLive(se) {
  const tbody = el('live-rows');
  if (tbody.querySelector(`tr[data-hash="${CSS.escape(se.hash)}"]`)) return;
  const cols = columns().filter((c) => visible.includes(c.id));
  tbody.prepend(buildRow(se, cols, hrefFor, verdicts, state.ev));
  while (tbody.childElementCount > LIVE_MAX) tbody.lastElementChild.remove();
  live.shown++;
  setText(el('live-status'), `Live · ${fmtInt(live.shown)} new`);
  if (search && !search.count) hideMessage();
  logEmpty = false;
  scheduleAggRefresh();
}

function rerenderLiveRows() {
  const tbody = el('live-rows');
  const hashes = [...tbody.querySelectorAll('tr')].map((tr) => tr.dataset.hash);
  const cols = columns().filter((c) => visible.includes(c.id));
  tbody.replaceChildren(...hashes.map((hh) => items.get(hh)).filter(Boolean).map((it) => buildRow(it.event, cols, hrefFor, verdicts, state.ev)));
}

// ------------------------------------------------------------------ export ----

function safeName(s) {
  return s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);
}

function triggerDownload(url, filename) {
  const a = h('a', { attrs: { href: url, download: filename } });
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
}

async function exportAs(format) {
  const query = buildQuery(state);
  const bounds = search?.bounds ?? timeBounds(state);
  const params = new URLSearchParams({ format, query, start: bounds.start, ...api.configParams() });
  if (bounds.end) params.set('end', bounds.end);
  const status = el('live-status');
  setText(status, `Preparing ${format.toUpperCase()} export…`);
  try {
    const res = await api.fetchRaw(`/api/v1/export?${params}`, { accept: '*/*' });
    if (res.status === 404 && search?.id && format !== 'jsonl.gz') {
      // No streaming export: use the Pangea download link of the current search instead.
      const r = await api.downloadResults(search.id, format);
      triggerDownload(r.dest_url, `trailkeep-search.${format}.gz`);
      setText(status, 'Export ready (gzip file from the search result).');
      return;
    }
    if (!res.ok) {
      let msg = `HTTP ${res.status}`;
      try { const b = await res.json(); msg = b.detail || b.title || b.summary || msg; } catch { /* ignore */ }
      if (res.status === 401) signOut('Your API key was rejected by the server. Sign in again.');
      throw new Error(msg);
    }
    const blob = await res.blob();
    const cd = res.headers.get('Content-Disposition') || '';
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const name = m ? safeName(decodeURIComponent(m[1])) : `trailkeep-${stamp}.${format}`;
    const url = URL.createObjectURL(blob);
    triggerDownload(url, name);
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    setText(status, `Exported ${name}`);
    announce(`Export ready: ${name}`);
  } catch (e) {
    setText(status, '');
    showMessage('error', `Export failed: ${e.message}`);
  }
}

// ------------------------------------------------------------------ boot ----

async function boot() {
  api.onUnauthorized(() => signOut('Your API key was rejected by the server. Sign in again.'));
  el('signin-form').addEventListener('submit', onSignIn);
  const key = api.getKey();
  if (!key) { showSignIn(); return; }
  try {
    await signInWith(key);
  } catch (e) {
    api.clearKey();
    showSignIn(e.status ? 'Your saved key is no longer accepted. Sign in again.' : e.message);
  }
}

boot();
