// The Configs page (admin keys without a workspace limit): the audit configs with their signing
// mode, event count and times; a config's schema as a table of fields; create (name, signing,
// schema from a fields editor or pasted JSON), update (name, new optional fields) and delete
// (refused by the server while the config holds events or keys are bound to it). Everything
// goes through Pangea's config API (POST /pangea/v1beta/config…), which logs each change as an
// event of the default config.

import * as api from './api.js';
import { h, clear, fmtInt, relTime, announce, displayValue } from './dom.js';
import { card, kv, mono, load, adminOnly, copyButton, stopPages } from './pages.js';
import { schemaFields, FIELD_TYPES } from './schema.js';

const FIELD_ID = /^[a-z][0-9a-z_]*$/;

const TYPE_LABELS = {
  string: 'string (indexed, exact and contains)',
  text: 'text (full text)',
  integer: 'integer (ranges)',
  boolean: 'boolean (true/false)',
  datetime: 'datetime (ranges)',
  'string-unindexed': 'string-unindexed (stored, not searchable)',
};

/** An error of the config API as one sentence, with the field each problem names. */
function explain(e) {
  const details = Array.isArray(e.details) ? e.details.filter((d) => d && d.detail) : [];
  if (!details.length) return e.message;
  return details.map((d) => (d.source ? `${d.detail} (at ${d.source})` : d.detail)).join('; ');
}

export function showConfigs(body, ctx, message = '') {
  stopPages();
  if (adminOnly(body, ctx.me)) return;
  load(body, 'the audit configs', api.listConfigs, (data) => {
    renderConfigs(body, data, ctx);
    if (message) notice(body, 'ok', message);
  });
}

/** The list again after a change, with what happened; the top bar's selector follows. */
function refresh(body, ctx, message) {
  showConfigs(body, ctx, message);
  ctx.onConfigsChanged?.();
}

/** A message at the top of the page: kind 'ok' (status) or 'error' (alert). */
function notice(body, kind, text) {
  body.querySelector('#config-message')?.remove();
  const box = h('div', {
    id: 'config-message', className: `message ${kind === 'error' ? 'error' : 'empty'}`,
    attrs: { role: kind === 'error' ? 'alert' : 'status' },
  }, h('p', null, text));
  body.prepend(box);
  announce(text);
}

function renderConfigs(body, data, ctx) {
  const items = Array.isArray(data?.items) ? data.items : [];
  const detail = h('section', { className: 'card', id: 'config-detail', hidden: true, attrs: { 'aria-labelledby': 'config-detail-title' } });

  const table = h('table', { className: 'data-table', id: 'configs-table' },
    h('caption', { className: 'visually-hidden' }, 'Audit configs'),
    h('thead', null, h('tr', null, ...['Name', 'Config id', 'Signing', 'Fields', 'Events', 'Created', 'Updated', 'Actions']
      .map((c) => h('th', { attrs: { scope: 'col' } }, c)))));
  const tbody = h('tbody');
  const defaultConfig = defaultId(items, ctx.me);
  for (const c of items) {
    const isDefault = c.id === defaultConfig;
    const events = h('td', { className: 'config-events', attrs: { 'data-label': 'Events' } }, h('span', { className: 'muted' }, '…'));
    api.configEventCount(c.id).then((a) => {
      events.textContent = `${a.complete === false ? '≥ ' : ''}${fmtInt(a.total ?? 0)}`;
    }, () => { events.textContent = '—'; });
    const buttons = h('span', { className: 'row-actions' },
      h('button', {
        type: 'button', className: 'mini', onClick: () => openConfig(detail, c, body, ctx),
        attrs: { 'aria-label': `Open config ${c.name} (schema and settings)` },
      }, 'Open'));
    const actions = h('td', { attrs: { 'data-label': 'Actions' } }, buttons);
    if (!isDefault) {
      buttons.append(' ', h('button', {
        type: 'button', className: 'mini danger', onClick: () => remove(c, body, ctx),
        attrs: { 'aria-label': `Delete config ${c.name} (${c.id})` },
      }, 'Delete'));
    }
    const fields = schemaFields(c.schema);
    tbody.append(h('tr', { dataset: { config: c.id } },
      h('td', { attrs: { 'data-label': 'Name' } }, h('span', null, displayValue(c.name), isDefault ? h('span', { className: 'tag' }, 'default') : null)),
      h('td', { className: 'mono', attrs: { 'data-label': 'Config id' } }, c.id),
      h('td', { attrs: { 'data-label': 'Signing' } }, c.vault_sign ? h('span', { title: c.vault_key_id ? `Event-signing key ${c.vault_key_id}` : null }, 'server') : 'none'),
      h('td', { attrs: { 'data-label': 'Fields' } }, fmtInt(fields.length)),
      events,
      h('td', { attrs: { 'data-label': 'Created' } }, relTime(c.created_at)),
      h('td', { attrs: { 'data-label': 'Updated' } }, relTime(c.updated_at)),
      actions));
  }
  table.append(tbody);
  body.append(
    card(`Configs (${fmtInt(data?.count ?? items.length)})`, h('div', { className: 'table-scroll' }, table),
      h('p', { className: 'hint' }, 'Keys are bound to configs when they are created (trailkeep keys create --config, or the admin API\'s "configs"); a key bound to several picks one in the "Audit config" selector of the top bar.')),
    detail,
    createCard(body, ctx));
}

/** The default config: whoami marks it; else the first created (the list is in creation order). */
function defaultId(items, me) {
  return (Array.isArray(me?.configs) ? me.configs.find((c) => c.default)?.id : undefined) ?? items[0]?.id;
}

// ------------------------------------------------------------------ fields editor ----

let rowSeq = 0;

/**
 * Rows of new fields: id, name, type, size, required, shown as a column. `optionalOnly`: for
 * additions to a config holding events (required fields cannot be added then).
 */
function fieldsEditor(prefix, { optionalOnly = false, initial = [] } = {}) {
  const rows = h('tbody', { id: `${prefix}-rows` });
  const table = h('table', { className: 'data-table fields-editor', id: `${prefix}-table` },
    h('caption', { className: 'visually-hidden' }, optionalOnly ? 'New optional fields' : 'Schema fields'),
    h('thead', null, h('tr', null, ...['Field id', 'Name', 'Type', 'Size', 'Required', 'Column', '']
      .map((c) => h('th', { attrs: { scope: 'col' } }, c)))),
    rows);
  const addRow = (f = {}) => {
    const n = ++rowSeq;
    const idIn = h('input', { type: 'text', id: `${prefix}-id-${n}`, className: 'field-id-input', value: f.id ?? '', attrs: { autocomplete: 'off', spellcheck: 'false', maxlength: 32, 'aria-label': 'Field id', placeholder: 'e.g. amount' } });
    const nameIn = h('input', { type: 'text', id: `${prefix}-name-${n}`, value: f.name ?? '', attrs: { autocomplete: 'off', 'aria-label': 'Display name (optional)' } });
    const typeSel = h('select', { id: `${prefix}-type-${n}`, attrs: { 'aria-label': 'Type' } },
      FIELD_TYPES.map((t) => h('option', { value: t }, TYPE_LABELS[t])));
    typeSel.value = f.type ?? 'string';
    const sizeIn = h('input', { type: 'number', id: `${prefix}-size-${n}`, value: f.size ?? '', attrs: { min: 1, step: 1, 'aria-label': 'Size (longest value, strings and text)', placeholder: 'default' } });
    const req = h('input', { type: 'checkbox', id: `${prefix}-required-${n}`, checked: !!f.required, disabled: optionalOnly, attrs: { 'aria-label': 'Required' } });
    const vis = h('input', { type: 'checkbox', id: `${prefix}-visible-${n}`, checked: f.visible ?? true, attrs: { 'aria-label': 'Shown as a column by default' } });
    const syncSize = () => { sizeIn.disabled = !['string', 'text', 'string-unindexed'].includes(typeSel.value); if (sizeIn.disabled) sizeIn.value = ''; };
    typeSel.addEventListener('change', syncSize);
    syncSize();
    const tr = h('tr', { className: 'field-row' },
      h('td', { attrs: { 'data-label': 'Field id' } }, idIn),
      h('td', { attrs: { 'data-label': 'Name' } }, nameIn),
      h('td', { attrs: { 'data-label': 'Type' } }, typeSel),
      h('td', { attrs: { 'data-label': 'Size' } }, sizeIn),
      h('td', { attrs: { 'data-label': 'Required' } }, req),
      h('td', { attrs: { 'data-label': 'Column' } }, vis));
    tr.append(h('td', null, h('button', {
      type: 'button', className: 'mini', onClick: () => { tr.remove(); },
      attrs: { 'aria-label': 'Remove this field' },
    }, 'Remove')));
    rows.append(tr);
    return idIn;
  };
  for (const f of initial) addRow(f);
  const add = h('button', { type: 'button', id: `${prefix}-add`, onClick: () => addRow().focus() }, 'Add field');
  /** The rows as AuditSchemaField objects, or an error text. */
  const read = () => {
    const out = [];
    const seen = new Set();
    for (const tr of rows.querySelectorAll('tr')) {
      const [idIn, nameIn, typeSel, sizeIn, req, vis] = tr.querySelectorAll('input, select');
      const id = idIn.value.trim();
      if (!id && !nameIn.value.trim()) continue;
      if (!FIELD_ID.test(id) || id.length > 32) return { error: `Field id “${id}” must start with a lowercase letter and use only a–z, 0–9 and _ (at most 32).`, focus: idIn };
      if (seen.has(id)) return { error: `Field id “${id}” appears twice.`, focus: idIn };
      seen.add(id);
      const f = { id, type: typeSel.value };
      if (nameIn.value.trim()) f.name = nameIn.value.trim();
      if (sizeIn.value) f.size = Number(sizeIn.value);
      if (req.checked) f.required = true;
      f.ui_default_visible = vis.checked;
      out.push(f);
    }
    return { fields: out };
  };
  return { element: h('div', { className: 'fields-editor-wrap' }, h('div', { className: 'table-scroll' }, table), add), addRow, read };
}

// ------------------------------------------------------------------ create ----

function createCard(body, ctx) {
  const error = h('p', { className: 'error-text', id: 'config-create-error', attrs: { role: 'alert' } });
  const name = h('input', { id: 'config-name', type: 'text', attrs: { required: true, maxlength: 200, autocomplete: 'off', 'aria-describedby': 'config-name-hint' } });
  const radio = (group, value, label, checked, hint) => h('label', { className: 'check', htmlFor: `config-${group}-${value}` },
    h('input', { type: 'radio', name: `config-${group}`, id: `config-${group}-${value}`, value, checked }), label,
    hint ? h('span', { className: 'muted' }, ` — ${hint}`) : null);
  const signing = h('fieldset', { className: 'scopes' }, h('legend', null, 'Signing'),
    radio('signing', 'none', 'None', true, 'events are stored as sent (clients may sign them)'),
    radio('signing', 'server', 'Server', false, 'the server signs every event with this config\'s own Ed25519 key'));
  const editor = fieldsEditor('config-field', { initial: [{ id: 'message', type: 'text', required: true }] });
  const json = h('textarea', {
    id: 'config-schema-text', attrs: { rows: 8, spellcheck: 'false', 'aria-describedby': 'config-json-hint', placeholder: '{"fields": [{"id": "message", "type": "text", "required": true}]}' },
  });
  const fieldsBox = h('div', { id: 'config-fields-box', hidden: true }, editor.element);
  const jsonBox = h('div', { className: 'field', id: 'config-json-box', hidden: true },
    h('label', { htmlFor: 'config-schema-text' }, 'Schema JSON (an AuditSchema, or its list of fields)'), json,
    h('p', { className: 'hint', id: 'config-json-hint' }, 'As the API and trailkeep configs create --schema take it.'));
  const schemaSet = h('fieldset', { className: 'scopes' }, h('legend', null, 'Schema'),
    radio('schema', 'standard', 'Standard', true, 'message, actor, action, target, source, status, new, old, timestamp, tenant_id'),
    radio('schema', 'fields', 'Custom fields', false, 'add fields below'),
    radio('schema', 'json', 'Paste JSON', false, null));
  const mode = () => schemaSet.querySelector('input:checked').value;
  schemaSet.addEventListener('change', () => {
    fieldsBox.hidden = mode() !== 'fields';
    jsonBox.hidden = mode() !== 'json';
  });
  const submit = h('button', { type: 'submit', className: 'primary', id: 'config-create' }, 'Create config');
  const form = h('form', { className: 'key-form', id: 'config-form', attrs: { novalidate: true } },
    h('div', { className: 'field' }, h('label', { htmlFor: 'config-name' }, 'Name'), name,
      h('p', { className: 'hint', id: 'config-name-hint' }, 'What the config is for, e.g. "payments".')),
    signing, schemaSet, fieldsBox, jsonBox, error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (!name.value.trim()) { error.textContent = 'Give the config a name.'; name.focus(); return; }
    const req = { name: name.value.trim(), vault_sign: signing.querySelector('input:checked').value === 'server' };
    if (mode() === 'fields') {
      const r = editor.read();
      if (r.error) { error.textContent = r.error; r.focus.focus(); return; }
      if (!r.fields.length) { error.textContent = 'Add at least one field, or choose the standard schema.'; return; }
      req.schema = { fields: r.fields };
    } else if (mode() === 'json') {
      let parsed;
      try { parsed = JSON.parse(json.value); } catch (e) { error.textContent = `The schema is not valid JSON: ${e.message}`; json.focus(); return; }
      req.schema = Array.isArray(parsed) ? { fields: parsed } : parsed;
    }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const created = await api.createConfig(req);
      refresh(body, ctx, `Config “${created.name}” created: ${created.id}. Bind keys to it with trailkeep keys create --config ${created.id}.`);
    } catch (e) {
      error.textContent = `The config was not created: ${explain(e)}`;
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create config';
    }
  });
  return card('Create a config', form);
}

// ------------------------------------------------------------------ one config ----

function schemaTable(config) {
  const fields = schemaFields(config.schema);
  const yes = (b) => (b ? 'yes' : 'no');
  return h('table', { className: 'data-table', id: 'config-schema-table' },
    h('caption', null, `Schema: ${fmtInt(fields.length)} field${fields.length === 1 ? '' : 's'}`),
    h('thead', null, h('tr', null, ...['Field id', 'Name', 'Type', 'Size', 'Required', 'Indexed', 'Column', 'Description']
      .map((c) => h('th', { attrs: { scope: 'col' } }, c)))),
    h('tbody', null, fields.map((f) => h('tr', { dataset: { field: f.id } },
      h('td', { className: 'mono', attrs: { 'data-label': 'Field id' } }, f.id),
      h('td', { attrs: { 'data-label': 'Name' } }, f.label === f.id ? '' : f.label),
      h('td', { attrs: { 'data-label': 'Type' } }, f.type),
      h('td', { attrs: { 'data-label': 'Size' } }, f.size === null ? '' : fmtInt(f.size)),
      h('td', { attrs: { 'data-label': 'Required' } }, yes(f.required)),
      h('td', { attrs: { 'data-label': 'Indexed' } }, f.searchable ? (f.type === 'text' ? 'full text' : 'yes') : 'no'),
      h('td', { attrs: { 'data-label': 'Column' } }, yes(f.visible)),
      h('td', { attrs: { 'data-label': 'Description' } }, f.description)))));
}

async function openConfig(box, summary, body, ctx) {
  clear(box);
  box.hidden = false;
  box.append(h('h2', { id: 'config-detail-title', tabIndex: -1 }, `Config “${summary.name}”`),
    h('p', { className: 'message loading', attrs: { role: 'status' } }, 'Loading the config…'));
  box.querySelector('h2').focus();
  let c;
  try {
    c = await api.getConfig(summary.id);
  } catch (e) {
    box.querySelector('.message').replaceWith(h('div', { className: 'message error', attrs: { role: 'alert' } },
      h('p', null, `Could not load config ${summary.id}: ${explain(e)} Retry, or reload the page.`),
      h('button', { type: 'button', onClick: () => openConfig(box, summary, body, ctx) }, 'Retry')));
    return;
  }
  box.querySelector('.message').remove();
  box.append(
    kv([
      ['Config id', h('span', null, mono(c.id), ' ', copyButton('Copy the config id', () => c.id))],
      ['Signing', c.vault_sign ? h('span', null, 'server: every event signed with key ', mono(c.vault_key_id ?? '?')) : 'none'],
      ['Created', relTime(c.created_at)],
      ['Updated', relTime(c.updated_at)],
    ]),
    h('div', { className: 'table-scroll' }, schemaTable(c)),
    editForm(c, body, ctx));
}

function editForm(c, body, ctx) {
  const error = h('p', { className: 'error-text', id: 'config-edit-error', attrs: { role: 'alert' } });
  const name = h('input', { id: 'config-edit-name', type: 'text', value: c.name, attrs: { maxlength: 200, autocomplete: 'off' } });
  const editor = fieldsEditor('config-new-field', { optionalOnly: true });
  const save = h('button', { type: 'submit', className: 'primary', id: 'config-save' }, 'Save changes');
  const form = h('form', { className: 'key-form', id: 'config-edit-form', attrs: { novalidate: true, 'aria-labelledby': 'config-edit-title' } },
    h('h3', { id: 'config-edit-title' }, 'Change'),
    h('div', { className: 'field' }, h('label', { htmlFor: 'config-edit-name' }, 'Name'), name),
    h('p', { className: 'hint' }, 'New fields are optional: events already stored do not have them. Fields cannot be removed or retyped while the config holds events.'),
    editor.element, error, save);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (!name.value.trim()) { error.textContent = 'The name cannot be empty.'; name.focus(); return; }
    const r = editor.read();
    if (r.error) { error.textContent = r.error; r.focus.focus(); return; }
    const req = { id: c.id, name: name.value.trim(), updated_at: c.updated_at };
    if (r.fields.length) {
      const fields = Array.isArray(c.schema?.fields) ? c.schema.fields : [];
      req.schema = { ...c.schema, fields: [...fields, ...r.fields] };
    }
    save.disabled = true;
    save.textContent = 'Saving…';
    try {
      const updated = await api.updateConfig(req);
      refresh(body, ctx, `Config “${updated.name}” saved${r.fields.length ? ` with ${r.fields.length} new field${r.fields.length === 1 ? '' : 's'}` : ''}.`);
    } catch (e) {
      error.textContent = `The config was not changed: ${explain(e)}`;
    } finally {
      save.disabled = false;
      save.textContent = 'Save changes';
    }
  });
  return form;
}

async function remove(c, body, ctx) {
  const ok = await ctx.confirm(`Delete config “${c.name}”?`,
    `Config ${c.id} and its schema are deleted. The server refuses while the config holds events (an audit log never drops events) or keys are bound to it. The deletion is logged as an event.`,
    'Delete config');
  if (!ok) return;
  try {
    await api.deleteConfig(c.id);
    refresh(body, ctx, `Config “${c.name}” deleted.`);
  } catch (e) {
    notice(body, 'error', `Config “${c.name}” was not deleted: ${explain(e)}`);
  }
}
