// The pages beside the search: Integrity (tree, newest signed root checked in this browser,
// checkpoint file, public key, verification run on the server), Keys (list, create with the
// secret shown once, revoke) and Retention (policy, last purge, purge now). Everything goes
// through the server's JSON API; the server logs every change as an event.

import * as api from './api.js';
import { h, clear, fmtInt, fmtDuration, relTime, announce, displayValue } from './dom.js';
import { verifySignedRoot } from './verify.js';

// ------------------------------------------------------------------ shared ----

export function card(title, ...children) {
  const id = `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { className: 'card', attrs: { 'aria-labelledby': id } }, h('h2', { id }, title), ...children);
}

export function kv(pairs) {
  const dl = h('dl', { className: 'kv' });
  for (const [k, v] of pairs) {
    if (v === undefined) continue;
    dl.append(h('dt', null, k), h('dd', null, v === null || v === '' ? h('span', { className: 'val empty' }, '—') : v));
  }
  return dl;
}

export function mono(text) {
  return h('span', { className: 'val mono' }, text);
}

export function copyButton(label, getText) {
  const b = h('button', { type: 'button', className: 'mini', attrs: { 'aria-label': label } }, 'Copy');
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = 'Copied';
      announce('Copied to the clipboard');
    } catch {
      b.textContent = 'Copy failed: select the text instead';
    }
    setTimeout(() => { b.textContent = 'Copy'; }, 2000);
  });
  return b;
}

export function badge(kind, text) {
  return h('span', { className: `badge ${kind}` }, text);
}

/** Shows "Loading…", then the page, or an error that says what to do with a Retry button. */
export async function load(body, what, fetcher, render) {
  clear(body);
  body.append(h('p', { className: 'message loading', attrs: { role: 'status' } }, `Loading ${what}…`));
  let data;
  try {
    data = await fetcher();
  } catch (e) {
    clear(body);
    const hint = e.status === 403
      ? 'This key may not see this page: sign in with an admin key without a workspace limit.'
      : e.status ? '' : 'Check that trailkeep is running, then retry.';
    body.append(h('div', { className: 'message error', attrs: { role: 'alert' } },
      h('p', null, `Could not load ${what}: ${e.message} ${hint}`),
      h('button', { type: 'button', onClick: () => load(body, what, fetcher, render) }, 'Retry')));
    return;
  }
  clear(body);
  render(data);
}

export function isUnlimitedAdmin(me) {
  return !me?.unknown && Array.isArray(me?.scopes) && me.scopes.includes('admin') && !(me.workspaces ?? []).length;
}

export function adminOnly(body, me) {
  if (isUnlimitedAdmin(me)) return false;
  clear(body);
  body.append(h('div', { className: 'message', attrs: { role: 'status' } },
    h('p', null, 'This page needs an admin key without a workspace limit. Sign in with one to use it.')));
  return true;
}

// ------------------------------------------------------------------ Integrity ----

let verifyPoll = null;

export function stopPages() {
  clearTimeout(verifyPoll);
  verifyPoll = null;
}

export function showIntegrity(body, ctx) {
  stopPages();
  load(body, 'the integrity state', api.integrity, (data) => renderIntegrity(body, data, ctx));
}

function renderIntegrity(body, d, ctx) {
  body.append(card('Log', kv([
    ['Events', fmtInt(d.events)],
    ['Tree size', h('span', null, `${fmtInt(d.tree_size)} `, h('span', { className: 'muted' }, '(leaves: sealed buffers of events; one signed root per size)'))],
    ['Tree name', mono(d.tree_name)],
  ])));

  // Newest signed root, its signature checked here.
  const rootBox = card('Newest signed root');
  const r = d.newest_root;
  if (!r) {
    rootBox.append(h('p', { className: 'muted' }, 'No root yet: the log is empty.'));
  } else {
    const verdict = badge('pending', 'Checking the signature…');
    verdict.id = 'root-verdict';
    verdict.setAttribute('role', 'status');
    const detail = h('p', { className: 'hint', id: 'root-verdict-detail' });
    rootBox.append(h('div', { className: 'verify-row' }, verdict), detail, kv([
      ['Size', fmtInt(r.size)],
      ['Root hash', h('span', { className: 'with-copy' }, mono(r.root_hash), copyButton('Copy root hash', () => r.root_hash))],
      ['Published', relTime(r.published_at)],
      ['Signature', mono(r.signature)],
      ['Signed message', mono(r.signed_message)],
    ]));
    verifySignedRoot(r, d.public_key).then((res) => {
      verdict.className = `badge ${res.ok === true ? 'ok' : res.ok === false ? 'bad' : 'pending'}`;
      verdict.textContent = res.ok === true ? '✓ Signature verified' : res.ok === false ? '✗ Signature invalid' : 'Signature not checked';
      detail.textContent = res.detail;
    });
  }
  body.append(rootBox);

  // Checkpoint file.
  const cp = d.checkpoint ?? {};
  const states = {
    consistent: ['ok', '✓ Consistent', 'The database holds the root the checkpoint file records.'],
    missing: ['pending', 'No checkpoint yet', 'The file is written with the first event.'],
    mismatch: ['bad', '✗ Does not match', 'The database is behind or forked from the file: restored from an old backup, or edited. Run trailkeep verify on the server.'],
    unreadable: ['bad', '✗ Unreadable', 'The server cannot read the file. Check the data directory on the server.'],
  };
  const [kind, label, text] = states[cp.state] ?? ['bad', String(cp.state), ''];
  body.append(card('Checkpoint file',
    h('div', { className: 'verify-row' }, h('span', { className: `badge ${kind}`, id: 'checkpoint-state' }, label)),
    h('p', { className: 'hint' }, cp.detail ? `${text} ${cp.detail}` : text),
    cp.size === undefined ? null : kv([
      ['Size', fmtInt(cp.size)],
      ['Root hash', mono(cp.root_hash)],
      ['Published', cp.published_at ? relTime(cp.published_at) : null],
    ])));

  // Public key.
  const pk = d.public_key ?? {};
  body.append(card('Server public key',
    h('p', { className: 'hint' }, 'Ed25519; it signs every root. Keep a copy elsewhere to check roots and exports without trusting this server (trailkeep keys public prints it too).'),
    kv([
      ['Base64', h('span', { className: 'with-copy' }, mono(pk.public_key), copyButton('Copy the public key (base64)', () => pk.public_key))],
      ['PEM', h('span', { className: 'with-copy' }, h('pre', { className: 'code pem' }, pk.pem), copyButton('Copy the public key (PEM)', () => pk.pem))],
    ])));

  const verifyBox = card('Verification');
  verifyBox.id = 'verify-card';
  body.append(verifyBox);
  renderVerify(verifyBox, d.verify, ctx);

  // Replication: only when the server replicates (or cannot say whether it does).
  if (d.replication === null) {
    body.append(card('Replication', h('p', { className: 'muted' }, 'The replication state could not be read; reload the page.')));
  } else if (d.replication?.enabled) {
    body.append(renderReplication(d.replication));
  }
}

function renderReplication(rep) {
  const lagEvents = rep.lag_events ?? 0;
  const lagSec = rep.lag_seconds ?? 0;
  const states = {
    idle: ['ok', lagEvents ? 'Waiting for the next upload' : '✓ Up to date'],
    uploading: ['pending', 'Uploading'],
    starting: ['pending', 'Starting'],
    retrying: ['bad', '✗ Retrying after a failed upload'],
    stopped: ['pending', 'Stopped'],
    refused: ['bad', '✗ Not running: the target was refused'],
  };
  const [kind, label] = states[rep.state] ?? ['pending', String(rep.state ?? 'unknown')];
  const lag = lagEvents
    ? `${fmtInt(lagEvents)} event${lagEvents === 1 ? '' : 's'} not yet copied; the oldest is ${fmtDuration(lagSec)} old`
    : 'none: every committed event is in the target';
  const err = rep.last_error;
  return card('Replication',
    h('div', { className: 'verify-row' }, h('span', { className: `badge ${kind}`, id: 'replication-state', attrs: { role: 'status' } }, label)),
    h('p', { className: 'hint' }, 'Sealed buffers of events and their proofs are copied to object storage, where each copy can be checked against this server\'s public key.'),
    kv([
      ['Target', rep.target === undefined ? h('span', { className: 'muted' }, 'shown to admin keys without a workspace limit') : mono(rep.target)],
      ['Lag', h('span', { id: 'replication-lag' }, lag)],
      ['Events in the target', fmtInt(rep.replicated_events ?? 0)],
      ['Last upload', rep.last_upload_at ? relTime(rep.last_upload_at) : null],
      ['Objects', rep.objects === undefined ? undefined : fmtInt(rep.objects)],
      ['Last failure', err ? `${displayValue(err.kind)}: ${displayValue(err.message)}${err.at ? ` (${err.at})` : ''}` : undefined],
    ]));
}

function renderVerify(box, v, ctx) {
  const title = box.querySelector('h2');
  box.replaceChildren(title);
  const last = v?.last;
  if (last) {
    const ok = last.ok === true;
    const took = Date.parse(last.finished_at) - Date.parse(last.started_at);
    box.append(h('div', { className: 'verify-row' },
      h('span', { className: `badge ${ok ? 'ok' : 'bad'}`, id: 'verify-last' }, ok ? '✓ No problems found' : `✗ ${last.error ? 'Could not run' : `${fmtInt(last.problems?.length ?? 0)} problem(s) found`}`)),
    kv([
      ['Finished', relTime(last.finished_at)],
      ['Took', Number.isFinite(took) ? `${(took / 1000).toFixed(1)} s` : null],
      ['Events checked', fmtInt(last.events ?? 0)],
      ['Purged by retention', fmtInt(last.purged ?? 0)],
      ['Tree size', fmtInt(last.tree_size ?? 0)],
    ]));
    if (last.error) box.append(h('p', { className: 'error-text' }, last.error));
    const problems = Array.isArray(last.problems) ? last.problems : [];
    if (problems.length) {
      box.append(h('ul', { className: 'problems', attrs: { 'aria-label': 'Problems found' } },
        problems.map((p) => h('li', null, h('strong', null, displayValue(p.kind)), p.detail ? `: ${displayValue(p.detail)}` : ''))));
    }
  } else {
    box.append(h('p', { className: 'muted' }, 'No verification has run on this server yet.'));
  }
  box.append(h('p', { className: 'hint' }, 'Recomputes every event hash, buffer root, tree root and signature, checks purges and the checkpoint file, and SQLite\'s own structure check, like trailkeep verify. It runs on the server in the background; events keep coming in.'));
  if (v?.running) {
    const done = v.checked ?? 0;
    const all = Math.max(v.total ?? 0, done, 1);
    box.append(h('div', { className: 'progress-row', attrs: { role: 'status' } },
      h('label', { htmlFor: 'verify-progress' }, `Verifying: ${fmtInt(done)} of ${fmtInt(all)} events checked`),
      h('progress', { id: 'verify-progress', value: done, attrs: { max: all } })));
    clearTimeout(verifyPoll);
    verifyPoll = setTimeout(async () => {
      try {
        const next = await api.verifyStatus();
        if (!box.isConnected) return;
        renderVerify(box, next, ctx);
        if (!next.running) announce(next.last?.ok ? 'Verification finished: no problems found' : 'Verification finished: problems found');
      } catch (e) {
        if (box.isConnected) box.append(h('p', { className: 'error-text', attrs: { role: 'alert' } }, `Lost track of the verification: ${e.message}. Reload the page to see its result.`));
      }
    }, 700);
    return;
  }
  if (isUnlimitedAdmin(ctx.me)) {
    const btn = h('button', { type: 'button', className: 'primary', id: 'verify-now' }, 'Verify now');
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      btn.textContent = 'Starting…';
      try {
        renderVerify(box, await api.startVerify(), ctx);
        announce('Verification started');
      } catch (e) {
        btn.disabled = false;
        btn.textContent = 'Verify now';
        box.append(h('p', { className: 'error-text', attrs: { role: 'alert' } }, `Could not start: ${e.message}`));
      }
    });
    box.append(btn);
  } else {
    box.append(h('p', { className: 'muted' }, 'An administrator can run a verification from this page; anyone with shell access can run trailkeep verify on the server.'));
  }
}

// ------------------------------------------------------------------ Keys ----

export function showKeys(body, ctx) {
  stopPages();
  if (adminOnly(body, ctx.me)) return;
  load(body, 'the keys', api.listKeys, (data) => renderKeys(body, data, ctx));
}

const SCOPES = [
  ['ingest', 'ingest: log events'],
  ['search', 'search: search, export, live tail'],
  ['admin', 'admin: everything, and this page'],
];

function renderKeys(body, data, ctx) {
  const secretBox = h('section', { className: 'card secret', id: 'key-secret', hidden: true, attrs: { 'aria-labelledby': 'key-secret-title' } });
  const error = h('p', { className: 'error-text', id: 'key-create-error', attrs: { role: 'alert' } });
  const name = h('input', { id: 'key-name', type: 'text', name: 'name', attrs: { required: true, maxlength: 200, autocomplete: 'off', 'aria-describedby': 'key-name-hint' } });
  const boxes = SCOPES.map(([id, label]) => h('label', { className: 'check', htmlFor: `key-scope-${id}` },
    h('input', { type: 'checkbox', id: `key-scope-${id}`, value: id, checked: id === 'search' }), label));
  const ws = h('input', { id: 'key-workspaces', type: 'text', attrs: { autocomplete: 'off', 'aria-describedby': 'key-ws-hint', placeholder: 'workspaces/w1, workspaces/w2' } });
  const submit = h('button', { type: 'submit', className: 'primary', id: 'key-create' }, 'Create key');
  const form = h('form', { className: 'key-form', id: 'key-form', attrs: { novalidate: true } },
    h('div', { className: 'field' }, h('label', { htmlFor: 'key-name' }, 'Name'), name,
      h('p', { className: 'hint', id: 'key-name-hint' }, 'Who or what uses it, e.g. "ci-ingest" or "alice laptop".')),
    h('fieldset', { className: 'scopes' }, h('legend', null, 'Scopes'), ...boxes),
    h('div', { className: 'field' }, h('label', { htmlFor: 'key-workspaces' }, 'Workspaces'), ws,
      h('p', { className: 'hint', id: 'key-ws-hint' }, 'Comma-separated; the key then writes and sees only these. Empty: every workspace.')),
    error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const scopes = boxes.map((l) => l.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
    const workspaces = ws.value.split(',').map((w) => w.trim()).filter(Boolean);
    if (!name.value.trim()) { error.textContent = 'Give the key a name.'; name.focus(); return; }
    if (!scopes.length) { error.textContent = 'Choose at least one scope.'; boxes[0].querySelector('input').focus(); return; }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const created = await api.createKey({ name: name.value.trim(), scopes, workspaces });
      form.reset();
      boxes[1].querySelector('input').checked = true;
      showSecret(secretBox, created, () => showKeys(body, ctx));
    } catch (e) {
      error.textContent = `The key was not created: ${e.message}`;
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create key';
    }
  });
  body.append(card('Create a key', form), secretBox);

  const keys = Array.isArray(data?.keys) ? data.keys : [];
  const table = h('table', { className: 'data-table', id: 'keys-table' },
    h('caption', { className: 'visually-hidden' }, 'API keys'),
    h('thead', null, h('tr', null, ...['Name', 'Key id', 'Scopes', 'Workspaces', 'Created', 'Last used', 'Status', 'Actions'].map((c) => h('th', { attrs: { scope: 'col' } }, c)))));
  const tbody = h('tbody');
  const sorted = [...keys].sort((a, b) => Number(!!a.revoked_at) - Number(!!b.revoked_at) || String(b.created_at).localeCompare(String(a.created_at)));
  for (const k of sorted) {
    const own = ctx.me?.key_id === k.id;
    const status = k.revoked_at ? h('span', null, 'Revoked ', relTime(k.revoked_at)) : h('span', { className: 'status-ok' }, own ? 'Active (this session)' : 'Active');
    const actions = h('td');
    if (!k.revoked_at) {
      actions.append(h('button', {
        type: 'button', className: 'mini danger', onClick: () => revoke(k, own, body, ctx),
        attrs: { 'aria-label': `Revoke key ${k.name} (${k.id})` },
      }, 'Revoke'));
    }
    tbody.append(h('tr', { dataset: { key: k.id }, className: k.revoked_at ? 'revoked' : '' },
      h('td', { attrs: { 'data-label': 'Name' } }, displayValue(k.name)),
      h('td', { className: 'mono', attrs: { 'data-label': 'Key id' } }, displayValue(k.id)),
      h('td', { attrs: { 'data-label': 'Scopes' } }, (k.scopes ?? []).join(', ')),
      h('td', { attrs: { 'data-label': 'Workspaces' } }, (k.workspaces ?? []).length ? k.workspaces.join(', ') : 'all'),
      h('td', { attrs: { 'data-label': 'Created' } }, relTime(k.created_at)),
      h('td', { attrs: { 'data-label': 'Last used' } }, k.last_used_at ? relTime(k.last_used_at) : 'never'),
      h('td', { attrs: { 'data-label': 'Status' } }, status),
      actions));
  }
  table.append(tbody);
  body.append(card(`Keys (${fmtInt(keys.filter((k) => !k.revoked_at).length)} active)`, h('div', { className: 'table-scroll' }, table)));
}

function showSecret(box, created, refresh) {
  clear(box);
  const code = h('code', { className: 'secret-value', id: 'key-secret-value', tabIndex: 0 }, created.secret);
  const done = h('button', { type: 'button', id: 'key-secret-done' }, 'I have stored it');
  done.addEventListener('click', () => {
    clear(box);
    box.hidden = true;
    refresh();
  });
  box.append(
    h('h2', { id: 'key-secret-title' }, `Key “${created.name}” created: copy its secret now`),
    h('p', { className: 'warning', attrs: { role: 'alert' } }, 'This is the only time the secret is shown. Store it in a password manager or your deployment\'s secret store: it cannot be shown again, only revoked and replaced.'),
    h('div', { className: 'secret-row' }, code, copyButton('Copy the new key', () => created.secret)),
    kv([['Key id', mono(created.id)], ['Scopes', (created.scopes ?? []).join(', ')], ['Workspaces', (created.workspaces ?? []).length ? created.workspaces.join(', ') : 'all']]),
    done);
  box.hidden = false;
  code.focus();
  announce(`Key ${created.name} created. Copy its secret now: it is shown only once.`);
}

async function revoke(k, own, body, ctx) {
  const ok = await ctx.confirm(`Revoke key “${k.name}”?`,
    `Key ${k.id} stops working at once, for every client that uses it${own ? ' — including this session, which will be signed out' : ''}. This cannot be undone; the revocation is logged as an event.`,
    'Revoke key');
  if (!ok) return;
  try {
    await api.revokeKey(k.id);
    announce(`Key ${k.name} revoked`);
    if (own) return; // the next request signs this session out
    showKeys(body, ctx);
  } catch (e) {
    body.prepend(h('div', { className: 'message error', attrs: { role: 'alert' } }, h('p', null, `Key ${k.id} was not revoked: ${e.message}`)));
  }
}

// ------------------------------------------------------------------ Retention ----

export function showRetention(body, ctx) {
  stopPages();
  if (adminOnly(body, ctx.me)) return;
  load(body, 'the retention policy', api.retention, (data) => renderRetention(body, data, ctx));
}

function renderRetention(body, d, ctx) {
  const ws = Object.entries(d.workspaces ?? {});
  const policy = card('Policy',
    h('div', { className: 'verify-row' }, h('span', { className: `badge ${d.enabled ? 'ok' : 'pending'}`, id: 'retention-state' }, d.enabled ? 'On' : 'Off: events are kept forever')),
    kv([['Default period', displayValue(d.default)], ['Runs every', displayValue(d.interval)]]));
  if (ws.length) {
    policy.append(h('table', { className: 'data-table' },
      h('caption', null, 'Per workspace'),
      h('thead', null, h('tr', null, h('th', { attrs: { scope: 'col' } }, 'Workspace'), h('th', { attrs: { scope: 'col' } }, 'Period'))),
      h('tbody', null, ws.map(([w, p]) => h('tr', null, h('td', null, w), h('td', null, displayValue(p)))))));
  }
  policy.append(h('p', { className: 'hint' }, 'Set in the server\'s configuration file ([retention] default and [retention.workspaces]); a change takes effect at the next start.'));
  body.append(policy);

  const lastBox = card('Last purge');
  lastBox.id = 'retention-last';
  renderLastPurge(lastBox, d.last_run, d.running);
  body.append(lastBox);

  const result = h('div', { id: 'purge-result', attrs: { role: 'status' } });
  const btn = h('button', { type: 'button', className: 'primary', id: 'purge-now', disabled: !d.enabled }, 'Purge now');
  btn.addEventListener('click', async () => {
    const ok = await ctx.confirm('Purge now?',
      'The content of every event older than its workspace\'s retention period is removed now (hashes and proofs stay). The purge is logged by one event per workspace.',
      'Purge now');
    if (!ok) return;
    btn.disabled = true;
    btn.textContent = 'Purging…';
    clear(result);
    try {
      const r = await api.purgeNow();
      result.append(h('p', null, `Purged ${fmtInt(r.purged ?? 0)} events in ${fmtInt(Object.keys(r.workspaces ?? {}).length)} workspace(s); ${fmtInt(r.purge_events ?? 0)} purge event(s) logged.`));
      announce(`Purged ${r.purged ?? 0} events`);
      const fresh = await api.retention().catch(() => null);
      if (fresh) renderLastPurge(lastBox, fresh.last_run, fresh.running);
    } catch (e) {
      if (e.code === 'purge_running') {
        result.append(h('p', null, 'A purge is already running (shown above); reload this page to see its outcome once it ends.'));
        const fresh = await api.retention().catch(() => null);
        if (fresh) renderLastPurge(lastBox, fresh.last_run, fresh.running);
      } else {
        result.append(h('p', { className: 'error-text' }, `The purge did not run: ${e.message} It runs again at the next interval; retry later.`));
      }
    } finally {
      btn.disabled = false;
      btn.textContent = 'Purge now';
    }
  });
  body.append(card('Purge now',
    h('p', { className: 'hint' }, d.enabled ? 'Runs the purge at once instead of waiting for the next interval.' : 'Retention is off, so there is nothing to purge. Configure a period first.'),
    btn, result));
}

function renderLastPurge(box, last, running) {
  const title = box.querySelector('h2');
  box.replaceChildren(title);
  if (running) {
    box.append(h('p', { id: 'purge-running' }, badge('pending', 'Running'),
      ` since ${relTime(running.started_at)}: ${fmtInt(running.purged ?? 0)} events purged so far.`));
  }
  if (!last) {
    if (!running) box.append(h('p', { className: 'muted' }, 'No purge has run since the server started.'));
    return;
  }
  const rep = last.report ?? {};
  box.append(kv([
    ['When', relTime(last.at)],
    ['Result', last.ok ? badge('ok', '✓ Done') : badge('bad', '✗ Failed')],
    ['Events purged', last.ok ? fmtInt(rep.purged ?? 0) : undefined],
    ['Workspaces', last.ok ? (Object.entries(rep.workspaces ?? {}).map(([w, n]) => `${w} (${fmtInt(n)})`).join(', ') || 'none') : undefined],
    ['Error', last.ok ? undefined : displayValue(last.error)],
  ]));
}

