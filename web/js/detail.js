// Event detail: every field, old → new diff, raw envelope, hash, leaf index, proof, Verify.

import { h, clear, displayValue, announce } from './dom.js';
import { canonicalJson, prettyJson, JsonNumber } from './json.js';
import { diffLines, toLines } from './diff.js';
import { parseMembershipProof, verifyEventSignature } from './verify.js';

const STANDARD_ORDER = ['message', 'actor', 'action', 'target', 'status', 'source', 'tenant_id', 'timestamp',
  'event_id', 'event_source', 'type', 'read_only', 'user_agent', 'status_message', 'metadata', 'request_parameters', 'new', 'old'];
const FILTERABLE = new Set(['actor', 'action', 'target', 'tenant_id', 'status', 'source']);

function orderedKeys(obj) {
  const keys = Object.keys(obj);
  const known = STANDARD_ORDER.filter((k) => keys.includes(k));
  return [...known, ...keys.filter((k) => !STANDARD_ORDER.includes(k)).sort()];
}

function copyButton(label, getText) {
  const b = h('button', { type: 'button', className: 'mini', attrs: { 'aria-label': label } }, 'Copy');
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Copy failed';
    }
    setTimeout(() => { b.textContent = 'Copy'; }, 1500);
  });
  return b;
}

function valueNode(v) {
  if (v === null) return h('span', { className: 'val empty' }, 'null');
  if (v === '') return h('span', { className: 'val empty' }, '(empty)');
  if (typeof v === 'boolean' || typeof v === 'number' || v instanceof JsonNumber) return h('span', { className: 'val mono' }, displayValue(v));
  return h('span', { className: 'val' }, displayValue(v));
}

/**
 * A definition list of an object; nested objects become nested lists. labels: field id →
 * { label, description } (a custom config's schema); filterable: the fields that get a Filter
 * button (default: the standard ones).
 */
function kvList(obj, { keys = Object.keys(obj).sort(), onFilter, path = '', labels = null, filterable = FILTERABLE } = {}) {
  const dl = h('dl', { className: 'kv' });
  for (const k of keys) {
    const v = obj[k];
    const info = labels?.get(k);
    const dt = info
      ? h('dt', { title: info.description || null }, info.label, info.label !== k ? h('span', { className: 'muted field-id' }, ` ${k}`) : null)
      : h('dt', null, k);
    if (v && typeof v === 'object' && !(v instanceof JsonNumber) && !Array.isArray(v)) {
      const inner = Object.keys(v).length ? kvList(v, { path: `${path}${k}.` }) : h('dd', null, h('span', { className: 'val empty' }, '(empty object)'));
      dl.append(dt, inner.tagName === 'DL' ? h('dd', null, inner) : inner);
      continue;
    }
    const dd = h('dd', null, valueNode(Array.isArray(v) ? prettyJson(v) : v));
    const text = typeof v === 'string' ? v : typeof v === 'boolean' || v instanceof JsonNumber ? displayValue(v) : '';
    if (onFilter && !path && filterable.has(k) && text !== '') {
      dd.append(h('button', {
        type: 'button', className: 'mini', onClick: () => onFilter(k, text),
        attrs: { 'aria-label': `Filter: only events whose ${k} is ${text}` },
      }, 'Filter'));
    }
    dl.append(dt, dd);
  }
  return dl;
}

function diffView(oldV, newV) {
  const lines = diffLines(toLines(oldV), toLines(newV));
  const box = h('div', { className: 'diff', attrs: { role: 'table', 'aria-label': 'Changes from old to new' } });
  for (const l of lines) {
    const sign = l.type === 'add' ? '+' : l.type === 'del' ? '−' : ' ';
    const sr = l.type === 'add' ? 'added: ' : l.type === 'del' ? 'removed: ' : '';
    box.append(h('div', { className: `diff-line ${l.type}`, attrs: { role: 'row' } },
      h('span', { className: 'sign', attrs: { 'aria-hidden': 'true' } }, sign),
      h('span', { attrs: { role: 'cell' } }, sr ? h('span', { className: 'visually-hidden' }, sr) : null, l.text)));
  }
  return box;
}

/**
 * The event's signature, checked in this browser as soon as the detail opens: a server-signed
 * event (its public_key names vault_key_id and vault_key_version) shows the key and version.
 */
function signatureBox(env) {
  const badge = h('span', { className: 'badge pending', id: 'signature-badge', attrs: { role: 'status' } }, 'Checking the signature…');
  const detail = h('span', { className: 'verify-reason', id: 'signature-detail' });
  const facts = h('div', { id: 'signature-key' });
  const box = h('section', { className: 'verify-box signature-box', attrs: { 'aria-label': 'Signature' } },
    h('div', { className: 'verify-row' }, h('strong', null, 'Signature'), badge, detail), facts);
  verifyEventSignature(env).then((r) => {
    const who = r.server ? 'Server signature' : 'Client signature';
    badge.className = `badge ${r.ok === true ? 'ok' : r.ok === false ? 'bad' : 'pending'}`;
    badge.textContent = r.ok === true ? `✓ ${who} verified` : r.ok === false ? `✗ ${who} failed` : `${who} not checked`;
    detail.textContent = r.detail;
    if (r.server) {
      facts.replaceChildren(h('dl', { className: 'kv' },
        h('dt', null, 'Signed by'), h('dd', null, 'this server (an audit config with server-side signing)'),
        h('dt', null, 'Key id'), h('dd', { className: 'mono' }, r.server.keyId),
        h('dt', null, 'Key version'), h('dd', { className: 'mono' }, displayValue(r.server.version ?? '?'))));
    }
  });
  return box;
}

/**
 * Renders the detail of one SearchEvent into `body`.
 * item = { event, root, unpublishedRoot, source: 'search'|'live' }
 * hooks = { onVerify(item) → Promise<result>, onFilter(field, value), verdict, fields (a custom
 * config's schemaFields, else standard) }
 */
export function renderDetail(body, item, hooks) {
  clear(body);
  const se = item.event;
  const env = se.envelope && typeof se.envelope === 'object' ? se.envelope : {};
  const event = env.event && typeof env.event === 'object' ? env.event : {};

  body.append(h('p', { className: 'detail-message' }, displayValue(event.message) || '(no message)'));

  // Verify
  const badge = h('span', { className: 'badge pending', id: 'verify-badge', attrs: { role: 'status' } }, 'Not verified yet');
  const reason = h('span', { className: 'verify-reason', id: 'verify-reason' });
  const checks = h('ul', { className: 'checks', id: 'verify-checks', attrs: { 'aria-label': 'Verification steps' } });
  const btn = h('button', { type: 'button', className: 'primary', id: 'verify-button' }, 'Verify');
  const showResult = (res) => {
    badge.className = `badge ${res.ok ? 'ok' : 'bad'}`;
    badge.textContent = res.ok ? '✓ Verified' : '✗ Failed';
    reason.textContent = res.ok ? 'Hash, membership proof and signed root all check out.' : `Reason: ${res.reason}.`;
    clear(checks);
    for (const c of res.checks) {
      const mark = c.ok === true ? '✓' : c.ok === false ? '✗' : 'ℹ';
      const cls = c.ok === true ? 'ok' : c.ok === false && !c.info ? 'bad' : 'info';
      checks.append(h('li', null,
        h('span', { className: `mark ${cls}`, attrs: { 'aria-hidden': 'true' } }, mark),
        h('strong', null, c.label, h('span', { className: 'visually-hidden' }, c.ok === true ? ' passed' : c.ok === false ? ' failed' : '')),
        h('span', { className: 'check-detail' }, c.detail)));
    }
  };
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    badge.className = 'badge pending';
    badge.textContent = 'Verifying…';
    reason.textContent = '';
    clear(checks);
    try {
      const res = await hooks.onVerify(item);
      showResult(res);
      announce(res.ok ? 'Event verified' : `Verification failed: ${res.reason}`);
    } catch (e) {
      showResult({ ok: false, reason: e.message || String(e), checks: [] });
    } finally {
      btn.disabled = false;
    }
  });
  body.append(h('section', { className: 'verify-box', attrs: { 'aria-label': 'Verification' } },
    h('div', { className: 'verify-row' }, btn, badge, reason),
    h('p', { className: 'hint' }, 'Recomputes the event hash from the canonical JSON of the envelope, folds the membership proof up to the root and checks the root’s Ed25519 signature, all in this browser.'),
    checks));
  if (hooks.verdict && hooks.verdict !== 'pending') showResult(hooks.verdict);

  if (env.signature && env.public_key) body.append(signatureBox(env));

  // Fields: a custom config's in its schema's order, with its names; else the standard order.
  body.append(h('h3', null, 'Event fields'));
  const schema = Array.isArray(hooks.fields) ? hooks.fields : null;
  let shown;
  if (schema) {
    const ids = schema.map((f) => f.id).filter((k) => k in event);
    shown = [...ids, ...Object.keys(event).filter((k) => !ids.includes(k)).sort()];
  } else {
    shown = orderedKeys(event).filter((k) => k !== 'old' && k !== 'new');
  }
  const opts = { keys: shown, onFilter: hooks.onFilter };
  if (schema) {
    opts.labels = new Map(schema.map((f) => [f.id, f]));
    opts.filterable = new Set(schema.filter((f) => f.searchable).map((f) => f.id));
  }
  body.append(shown.length ? kvList(event, opts) : h('p', { className: 'muted' }, 'No fields.'));

  body.append(h('h3', null, 'Envelope'));
  const envKeys = Object.keys(env).filter((k) => k !== 'event').sort();
  body.append(kvList(env, { keys: envKeys }));

  // Old vs new
  if (!schema && ('old' in event || 'new' in event)) {
    body.append(h('h3', null, 'Changes (old → new)'));
    body.append(h('p', { className: 'diff-legend' }, '− removed (old), + added (new). JSON values are shown with sorted keys.'));
    body.append(diffView(event.old, event.new));
  }

  // Integrity
  body.append(h('h3', null, 'Integrity'));
  const root = item.root || null;
  const integ = {
    hash: se.hash ?? '(none)',
    published: se.published === undefined ? '(not reported)' : se.published,
    leaf_index: se.leaf_index ?? '(not reported)',
  };
  if (root) {
    integ.root_tree_name = root.tree_name;
    integ.root_size = root.size;
    integ.root_hash = root.root_hash;
    if (root.published_at) integ.root_published_at = root.published_at;
  } else {
    integ.root = item.source === 'live' ? `fetched at verification (size leaf_index + 1)` : '(none in the response)';
  }
  const integList = kvList(integ, { keys: Object.keys(integ) });
  for (const dd of integList.querySelectorAll('dd')) dd.classList.add('mono');
  body.append(integList);
  const hashDd = integList.querySelector('dd');
  if (hashDd && typeof se.hash === 'string') hashDd.append(copyButton('Copy hash', () => se.hash));

  body.append(h('h4', null, 'Membership proof'));
  let items = [];
  let proofError = null;
  try { items = parseMembershipProof(se.membership_proof); } catch (e) { proofError = e.message; }
  if (se.membership_proof === undefined) body.append(h('p', { className: 'muted' }, 'The server sent no membership proof.'));
  else if (proofError) body.append(h('p', { className: 'error-text' }, `Malformed proof: ${proofError}`));
  else if (!items.length) body.append(h('p', { className: 'muted' }, 'Empty proof: the event hash is the root.'));
  else {
    body.append(h('ol', { className: 'proof', attrs: { 'aria-label': 'Proof steps from the leaf up' } },
      items.map((it) => h('li', null, `${it.side === 'l' ? 'left ' : 'right'} ${it.hex}`))));
  }

  // Raw
  body.append(h('h3', null, 'Raw envelope'));
  const pretty = prettyJson(env);
  body.append(h('div', { className: 'copy-row' }, copyButton('Copy envelope JSON', () => pretty)));
  body.append(h('pre', { className: 'code', id: 'raw-envelope', tabIndex: 0, attrs: { 'aria-label': 'Envelope JSON' } }, pretty));
  let canonical;
  try { canonical = canonicalJson(env); } catch (e) { canonical = `(cannot canonicalise: ${e.message})`; }
  body.append(h('details', { className: 'raw' },
    h('summary', null, 'Canonical form (the bytes that are hashed)'),
    h('pre', { className: 'code', tabIndex: 0 }, canonical)));
}
