// "Top values": the most frequent tenants, actors, actions, statuses and targets of the current
// search (from GET /api/v1/aggregate), each a click away from a filter that keeps it or one that
// excludes it.

import { h, clear, fmtInt } from './dom.js';

export const FACET_FIELDS = [
  { id: 'actor', label: 'Actor' },
  { id: 'action', label: 'Action' },
  { id: 'status', label: 'Status' },
  { id: 'target', label: 'Target' },
  { id: 'tenant_id', label: 'Tenant / workspace' },
];

export function renderFacetsMessage(body, text, retry) {
  clear(body);
  const p = h('p', { className: retry ? 'facets-message error' : 'facets-message' }, text);
  if (retry) p.append(' ', h('button', { type: 'button', className: 'mini', onClick: retry }, 'Retry'));
  body.append(p);
}

/**
 * Renders the top values of `agg` into `body`. hooks: { onInclude(field, value), onExclude(field, value) }.
 */
export function renderFacets(body, agg, hooks, fields = FACET_FIELDS) {
  if (!fields.length) {
    renderFacetsMessage(body, 'Top values count actors, actions, statuses, targets and tenants; this config\'s schema has none of them.');
    return;
  }
  const frag = document.createDocumentFragment();
  const all = Math.max(1, agg.total);
  for (const f of fields) {
    const top = agg.top?.[f.id];
    const values = Array.isArray(top?.values) ? top.values : [];
    const box = h('div', { className: 'facet', dataset: { field: f.id } }, h('h3', null, f.label));
    if (!values.length) {
      box.append(h('p', { className: 'facet-empty' }, 'No values'));
      frag.append(box);
      continue;
    }
    const list = h('ul', { attrs: { 'aria-label': `Most frequent: ${f.label}` } });
    for (const v of values) {
      const exact = typeof v.max !== 'number';
      const count = `${exact ? '' : '≥'}${fmtInt(v.count)}`;
      const name = typeof v.value === 'string' ? v.value : String(v.value);
      const include = h('button', {
        type: 'button', className: 'facet-value', title: name, onClick: () => hooks.onInclude(f.id, name),
        attrs: { 'aria-label': `Filter: ${f.label} is ${name} (${count} events)` },
      }, h('span', { className: 'facet-text' }, name));
      const bar = h('span', { className: 'facet-bar', attrs: { 'aria-hidden': 'true' } });
      bar.style.setProperty('--pct', `${Math.min(100, (100 * v.count) / all)}%`);
      const countEl = h('span', {
        className: 'facet-count', attrs: { 'aria-hidden': 'true' },
        title: exact ? `${fmtInt(v.count)} events` : `between ${fmtInt(v.count)} and ${fmtInt(v.max)} events (per-segment summaries keep each segment's most frequent values)`,
      }, count);
      const exclude = h('button', {
        type: 'button', className: 'facet-not mini', title: `Exclude ${name}`, onClick: () => hooks.onExclude(f.id, name),
        attrs: { 'aria-label': `Exclude: ${f.label} ${name}` },
      }, '≠');
      list.append(h('li', { className: 'facet-row' }, bar, include, countEl, exclude));
    }
    box.append(list);
    if (top.complete === false) box.append(h('p', { className: 'facet-note' }, 'Counts marked ≥ are lower bounds.'));
    frag.append(box);
  }
  body.replaceChildren(frag);
}
