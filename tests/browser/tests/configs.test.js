// Audit configs in the UI: the Configs page creates a custom-schema config with every field type
// and a server-signing one (both logged as events), shows a schema, renames and adds a field,
// refuses to delete a config holding events with a visible message and deletes an empty one. A
// key bound to two configs gets the "Audit config" selector (in the URL, kept on reload), every
// request carries config_id and none meets config_required; the columns follow the schema; typed
// filters (integer range, boolean) return exactly what the same query returns through the API; a
// server-signed event shows a verified signature (a tampered one fails); a key with one config
// sees no selector and sends no config_id. axe passes on the Configs page in light and dark mode.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createKey, apiCall, tamperEnvelope, launchBrowser, newPage, signIn, waitForResults, uid,
  screenshot, axe, resultCount, waitForInsights,
} from '../lib/harness.js';

describe('audit configs', () => {
  let server; let browser; let page; let problems;
  const tag = uid();
  const payName = `payments-${tag}`;
  const signedName = `signed-${tag}`;
  let pay; let signed; let twoKey;
  const amounts = [50, 100, 250, 499, 500, 501, 1000, 7];

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page, problems } = await newPage(browser.context));
    await page.setViewportSize({ width: 1400, height: 900 });
    await signIn(page, server, server.adminKey);
    await waitForResults(page);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  /** Fills row `i` of a fields editor (`prefix` as in configs.js). */
  async function fillRow(prefix, i, { id, name = '', type, size = '', required = false, visible = true }) {
    const row = page.locator(`#${prefix}-rows tr`).nth(i);
    await row.getByLabel('Field id').fill(id);
    if (name) await row.getByLabel('Display name (optional)').fill(name);
    await row.getByLabel('Type').selectOption(type);
    if (size) await row.getByLabel(/^Size/).fill(String(size));
    if (required) await row.getByLabel('Required').check();
    if (!visible) await row.getByLabel('Shown as a column by default').uncheck();
  }

  async function logged(action, id) {
    const r = await apiCall(server, server.adminKey, 'POST', '/pangea/v1/search',
      { query: `action="actions/audittrail/configs/${action}" AND target:"${id}"`, start: '1d' });
    return r.json.result.count;
  }

  it('creates a config with every field type and a server-signing config on the Configs page', async () => {
    await page.getByRole('link', { name: 'Configs' }).click();
    await page.locator('#configs-table').waitFor();
    assert.match(page.url(), /\/configs$/);
    assert.equal(await page.title(), 'Audit configs · Trailkeep');
    assert.equal(await page.locator('#configs-table tbody tr').count(), 1, 'only the default config');

    // a name is required
    await page.locator('#config-create').click();
    await page.locator('#config-create-error', { hasText: 'name' }).waitFor();
    await page.locator('#config-name').fill(payName);
    await page.locator('#config-schema-fields').check();
    // row 0 is message (text, required); add five more
    await fillRow('config-field', 0, { id: 'message', name: 'Message', type: 'text' });
    for (let i = 0; i < 5; i++) await page.locator('#config-field-add').click();
    await fillRow('config-field', 1, { id: 'user', name: 'User', type: 'string', size: 64, required: true });
    await fillRow('config-field', 2, { id: 'amount', name: 'Amount', type: 'integer' });
    await fillRow('config-field', 3, { id: 'approved', name: 'Approved', type: 'boolean' });
    await fillRow('config-field', 4, { id: 'at', name: 'Booked at', type: 'datetime' });
    await fillRow('config-field', 5, { id: 'raw', name: 'Raw', type: 'string-unindexed', visible: false });
    // a bad field id is caught before the request
    await page.locator('#config-field-rows tr').nth(5).getByLabel('Field id').fill('Raw!');
    await page.locator('#config-create').click();
    await page.locator('#config-create-error', { hasText: 'Raw!' }).waitFor();
    await page.locator('#config-field-rows tr').nth(5).getByLabel('Field id').fill('raw');
    await page.locator('#config-create').click();
    const msg = page.locator('#config-message', { hasText: payName });
    await msg.waitFor();
    pay = /pci_[a-z0-9]{32}/.exec(await msg.textContent())[0];
    await page.locator(`#configs-table tr[data-config="${pay}"]`).waitFor();

    const got = await apiCall(server, server.adminKey, 'POST', '/pangea/v1beta/config', { id: pay });
    assert.equal(got.json.result.name, payName);
    assert.equal(got.json.result.vault_sign, false);
    assert.deepEqual(got.json.result.schema.fields.map((f) => [f.id, f.type, !!f.required]), [
      ['message', 'text', true], ['user', 'string', true], ['amount', 'integer', false], ['approved', 'boolean', false],
      ['at', 'datetime', false], ['raw', 'string-unindexed', false],
    ]);
    assert.equal(got.json.result.schema.fields[1].size, 64);
    assert.equal(await logged('CREATE', pay), 1, 'the creation is logged as an event');

    // a server-signing config with the standard schema, from pasted JSON
    await page.locator('#config-name').fill(signedName);
    await page.locator('#config-signing-server').check();
    await page.locator('#config-schema-standard').check();
    await page.locator('#config-create').click();
    const msg2 = page.locator('#config-message', { hasText: signedName });
    await msg2.waitFor();
    signed = /pci_[a-z0-9]{32}/.exec(await msg2.textContent())[0];
    const row = page.locator(`#configs-table tr[data-config="${signed}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /server/);

    // the schema as a table
    await page.locator(`#configs-table tr[data-config="${pay}"]`).getByRole('button', { name: `Open config ${payName} (schema and settings)` }).click();
    await page.locator('#config-schema-table').waitFor();
    const types = await page.locator('#config-schema-table tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.dataset.field, tr.children[2].textContent, tr.children[5].textContent]));
    assert.deepEqual(types, [['message', 'text', 'full text'], ['user', 'string', 'yes'], ['amount', 'integer', 'yes'],
      ['approved', 'boolean', 'yes'], ['at', 'datetime', 'yes'], ['raw', 'string-unindexed', 'no']]);
    assert.deepEqual(problems.pageErrors, []);
  });

  it('pasted JSON creates a config; the server\'s schema errors are shown with the field', async () => {
    await page.goto(`${server.url}/configs`);
    await page.locator('#configs-table').waitFor();
    await page.locator('#config-name').fill(`json-${tag}`);
    await page.getByLabel('Paste JSON').check();
    await page.locator('#config-schema-text').fill('{"fields": [{"id": "message", "type": "text"}, {"id": "n", "type": "number"}]}');
    await page.locator('#config-create').click();
    await page.locator('#config-create-error', { hasText: '/schema/fields/1' }).waitFor();
    await page.locator('#config-schema-text').fill('[{"id": "message", "type": "text", "required": true}, {"id": "n", "type": "integer"}]');
    await page.locator('#config-create').click();
    await page.locator('#config-message', { hasText: `json-${tag}` }).waitFor();
  });

  it('a key bound to two configs picks one in the top bar; columns follow the schema; every request carries config_id', async () => {
    twoKey = await createKey(server, { name: `two-${tag}`, scopes: ['ingest', 'search'], configs: [pay, signed] });
    // events through /pangea/v1/log with config_id
    for (const [i, amount] of amounts.entries()) {
      const r = await apiCall(server, twoKey, 'POST', '/pangea/v1/log', {
        config_id: pay,
        event: { message: `${tag} payment ${i}`, user: i % 2 ? 'alice' : 'bob', amount, approved: i % 3 === 0, at: `2025-03-0${1 + (i % 5)}T10:00:00Z`, raw: `raw-${i}` },
      });
      assert.equal(r.status, 200, r.text);
    }
    for (let i = 0; i < 2; i++) {
      const r = await apiCall(server, twoKey, 'POST', '/pangea/v1/log', { config_id: signed, event: { message: `${tag} signed ${i}`, actor: 'carol', action: 'sign' } });
      assert.equal(r.status, 200, r.text);
    }
    const noConfig = await apiCall(server, twoKey, 'POST', '/pangea/v1/search', { query: '' });
    assert.equal(noConfig.json.status, 'MissingConfigID', 'the API needs config_id from this key');

    const { page: p2, problems: pr2 } = await newPage(browser.context);
    const seen = [];
    p2.on('request', (r) => {
      const u = new URL(r.url());
      if (/^\/(pangea\/v1\/(search|results|schema)|api\/v1\/(aggregate|tail|export))/.test(u.pathname)) {
        seen.push({ path: u.pathname, config: u.searchParams.get('config_id') ?? (r.postData() ? JSON.parse(r.postData()).config_id : undefined) });
      }
    });
    const refused = [];
    p2.on('response', async (r) => { if (r.status() === 400 && /config/i.test(await r.text().catch(() => ''))) refused.push(r.url()); });
    await p2.setViewportSize({ width: 1400, height: 900 });
    await signIn(p2, server, twoKey);
    await waitForResults(p2);
    await p2.locator('#config-picker').waitFor();
    assert.equal(await p2.getByLabel('Audit config', { exact: true }).count(), 1);
    const options = await p2.locator('#config-select option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual([...options].sort(), [pay, signed].sort());

    await p2.getByLabel('Audit config', { exact: true }).selectOption(pay);
    await p2.waitForURL(new RegExp(`config=${pay}`));
    await waitForResults(p2);
    assert.equal(await resultCount(p2), amounts.length);
    const heads = await p2.locator('#results-head th').allTextContents();
    assert.deepEqual(heads, ['Received', 'Message', 'User', 'Amount', 'Approved', 'Booked at'], 'visible columns: the schema\'s');
    // string-unindexed: a column that can be shown, but no filter
    const filterFields = await p2.locator('#filter-field option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(filterFields, ['message', 'user', 'amount', 'approved', 'at']);
    await p2.locator('#columns-menu summary').click();
    await p2.locator('#col-toggle-raw').check();
    await p2.locator('#columns-menu summary').click();
    await p2.locator('#result-rows td.col-raw', { hasText: 'raw-' }).first().waitFor();

    // sort by a custom integer field
    await p2.getByRole('button', { name: /^Sort by Amount/ }).click();
    await p2.waitForURL(/sort=amount&order=asc/);
    await waitForResults(p2);
    const sorted = await p2.locator('#result-rows td.col-amount').allTextContents();
    assert.deepEqual(sorted.map(Number), [...amounts].sort((a, b) => a - b));

    // reload keeps the config
    await p2.reload();
    await waitForResults(p2);
    assert.equal(await p2.locator('#config-select').inputValue(), pay);
    assert.equal(await resultCount(p2), amounts.length);

    // typed filters: integer range (min/max) and boolean, against the same query through the API
    const apiHashes = async (query) => {
      const r = await apiCall(server, twoKey, 'POST', '/pangea/v1/search', { config_id: pay, query, limit: 100, start: '1d' });
      assert.equal(r.json.status, 'Success', r.text);
      return r.json.result.events.map((e) => e.hash).sort();
    };
    const uiHashes = () => p2.locator('#result-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.hash).sort());
    await p2.locator('#filter-field').selectOption('amount');
    assert.equal(await p2.locator('#filter-value').isVisible(), false);
    await p2.getByLabel('Minimum Amount').fill('100');
    await p2.getByLabel('Maximum Amount').fill('500');
    await p2.getByRole('button', { name: 'Add filter' }).click();
    await p2.waitForURL(/f=amount%3E%3D100.*f=amount%3C%3D500/);
    await waitForResults(p2);
    const ranged = await apiHashes('amount>=100 amount<=500');
    assert.equal(ranged.length, 4);
    assert.deepEqual(await uiHashes(), ranged);
    assert.match(await p2.locator('#chips').textContent(), /Amount ≥ 100.*Amount ≤ 500/);

    await p2.locator('#filter-field').selectOption('approved');
    await p2.locator('#filter-bool').selectOption('true');
    await p2.getByRole('button', { name: 'Add filter' }).click();
    await p2.waitForURL(/f=approved%3Dtrue/);
    await waitForResults(p2);
    const both = await apiHashes('amount>=100 amount<=500 approved=true');
    assert.deepEqual(await uiHashes(), both);
    assert.equal(await resultCount(p2), both.length);

    // a string filter still offers contains / exact
    await p2.locator('#filter-field').selectOption('user');
    assert.deepEqual(await p2.locator('#filter-op option').evaluateAll((os) => os.map((o) => o.value)), [':', '=', '!=']);

    // detail: the schema's names, the unindexed field shown without a Filter button
    await p2.locator('#result-rows a.row-link').first().click();
    await p2.locator('#detail').waitFor({ state: 'visible' });
    const dts = await p2.locator('#detail-body > dl.kv').first().locator(':scope > dt').allTextContents();
    assert.deepEqual(dts.map((t) => t.trim().split(/\s+/)[0]), ['Message', 'User', 'Amount', 'Approved', 'Booked', 'Raw']);
    assert.equal(await p2.getByRole('button', { name: /^Filter: only events whose raw/ }).count(), 0);
    assert.equal(await p2.getByRole('button', { name: /^Filter: only events whose user/ }).count(), 1);
    await p2.locator('#verify-button').click();
    await p2.locator('#verify-badge.ok').waitFor({ timeout: 15000 });
    await screenshot(p2, 'configs-custom-search-laptop');

    // a datetime range (From/To in the browser's local time, sent as UTC instants)
    await p2.locator('#detail-close').click();
    await p2.getByRole('button', { name: 'Clear all' }).click();
    await waitForResults(p2);
    await p2.locator('#filter-field').selectOption('at');
    await p2.getByLabel('From Booked at').fill('2025-03-02T00:00');
    await p2.getByLabel('To Booked at').fill('2025-03-03T23:59');
    await p2.getByRole('button', { name: 'Add filter' }).click();
    await p2.waitForURL(/f=at%3E%3D.*f=at%3C%3D/);
    await waitForResults(p2);
    const [from, to] = await p2.evaluate(() => [new Date('2025-03-02T00:00').toISOString(), new Date('2025-03-03T23:59').toISOString()].map((t) => t.replace(/\.000Z$/, 'Z')));
    const inRange = await apiHashes(`at>="${from}" at<="${to}"`);
    assert.ok(inRange.length > 0 && inRange.length < amounts.length, `a proper subset (${inRange.length})`);
    assert.deepEqual(await uiHashes(), inRange);

    // export and live tail carry the config too
    const download = p2.waitForEvent('download');
    await p2.locator('#export-menu summary').click();
    await p2.locator('#export-menu button[data-format="csv"]').click();
    const csv = await (await download).createReadStream();
    let text = '';
    for await (const chunk of csv) text += chunk;
    assert.match(text.split('\n')[0], /amount/);
    await p2.locator('#live-toggle').click();
    await p2.locator('#live-status', { hasText: 'Live' }).waitFor();
    await p2.locator('#live-toggle').click();

    // the other config: the standard columns, its two events
    await p2.getByLabel('Audit config', { exact: true }).selectOption(signed);
    await p2.waitForURL(new RegExp(`config=${signed}`));
    await waitForResults(p2);
    assert.equal(await resultCount(p2), 2);
    assert.ok((await p2.locator('#results-head th').allTextContents()).includes('Actor'));
    await waitForInsights(p2);
    await p2.locator('#facets-body .facet[data-field="actor"] .facet-value', { hasText: 'carol' }).waitFor();
    assert.ok(!p2.url().includes('f=amount'), 'the other config\'s filters are dropped');

    const missing = seen.filter((s) => s.path !== '/pangea/v1/schema' && !s.config);
    assert.deepEqual(missing, [], 'every search request names its config');
    for (const path of ['/pangea/v1/schema', '/pangea/v1/search', '/api/v1/aggregate', '/api/v1/tail', '/api/v1/export']) {
      assert.ok(seen.some((s) => s.path === path), `the UI called ${path}`);
    }
    assert.deepEqual(refused, [], 'no config_required');
    assert.deepEqual(pr2.pageErrors, []);
    await p2.close();
  });

  it('a server-signed event shows a verified signature with the key id and version', async () => {
    const { page: p3 } = await newPage(browser.context);
    await signIn(p3, server, twoKey);
    await p3.goto(`${server.url}/?config=${signed}&q=${encodeURIComponent(`message:"${tag} signed 0"`)}`);
    await waitForResults(p3);
    assert.equal(await resultCount(p3), 1);
    await p3.locator('#result-rows a.row-link').first().click();
    await p3.locator('#signature-badge.ok').waitFor({ timeout: 15000 });
    assert.equal((await p3.locator('#signature-badge').textContent()).trim(), '✓ Server signature verified');
    const keyBox = await p3.locator('#signature-key').textContent();
    assert.match(keyBox, /pvi_[a-z0-9]+/);
    assert.match(keyBox, /Key version\s*1/);
    await p3.locator('#verify-button').click();
    await p3.locator('#verify-badge.ok').waitFor({ timeout: 15000 });
    assert.match(await p3.locator('#verify-checks').textContent(), /Server signature passed/);
    await p3.close();
  });

  it('a tampered server-signed event shows its signature as failed', async () => {
    const changed = await tamperEnvelope(server, { from: `${tag} signed 1`, to: `${tag} signed X`, whereLike: `%${tag} signed 1%` });
    assert.equal(changed, 1);
    const { page: p4 } = await newPage(browser.context);
    await signIn(p4, server, twoKey);
    await p4.goto(`${server.url}/?config=${signed}&q=actor:carol`);
    await waitForResults(p4);
    await p4.locator('#result-rows tr', { hasText: `${tag} signed X` }).locator('a.row-link').click();
    await p4.locator('#signature-badge.bad').waitFor({ timeout: 15000 });
    assert.equal((await p4.locator('#signature-badge').textContent()).trim(), '✗ Server signature failed');
    await p4.locator('#verify-button').click();
    await p4.locator('#verify-badge.bad').waitFor({ timeout: 15000 });
    await p4.close();
  });

  it('a key with one config sees no selector and sends no config_id', async () => {
    for (const [name, configs] of [['one-custom', [pay]], ['one-default', []]]) {
      const key = await createKey(server, { name: `${name}-${tag}`, scopes: ['search'], configs });
      const { page: p5, problems: pr5 } = await newPage(browser.context);
      const bodies = [];
      p5.on('request', (r) => {
        const u = new URL(r.url());
        if (u.pathname.startsWith('/pangea/v1/search') || u.pathname === '/api/v1/aggregate') bodies.push(u.searchParams.get('config_id') ?? JSON.parse(r.postData() ?? '{}').config_id ?? null);
      });
      await signIn(p5, server, key);
      await waitForResults(p5);
      assert.equal(await p5.locator('#config-picker').isVisible(), false, name);
      assert.ok(bodies.length >= 2, name);
      assert.deepEqual(bodies.filter((b) => b !== null), [], `${name}: no config_id`);
      const heads = await p5.locator('#results-head th').allTextContents();
      if (name === 'one-custom') {
        assert.ok(heads.includes('Amount'), 'the key\'s only config decides the columns');
        assert.equal(await resultCount(p5), amounts.length);
      } else {
        assert.deepEqual(heads, ['Received', 'Actor', 'Action', 'Target', 'Status', 'Tenant', 'Message']);
      }
      assert.deepEqual(pr5.pageErrors, []);
      await p5.close();
    }
  });

  it('renames a config and adds an optional field; the search offers it at once', async () => {
    await page.goto(`${server.url}/?config=${pay}`);
    await waitForResults(page);
    assert.equal(await page.locator('#filter-field option[value="region"]').count(), 0);
    await page.getByRole('link', { name: 'Configs' }).click();
    await page.locator('#configs-table').waitFor();
    await page.locator(`#configs-table tr[data-config="${pay}"]`).getByRole('button', { name: /^Open config/ }).click();
    await page.locator('#config-edit-form').waitFor();
    await page.locator('#config-edit-name').fill(`${payName}-eu`);
    await page.locator('#config-new-field-add').click();
    await fillRow('config-new-field', 0, { id: 'region', name: 'Region', type: 'string' });
    assert.equal(await page.locator('#config-new-field-rows tr').first().getByLabel('Required').isDisabled(), true);
    await page.locator('#config-save').click();
    await page.locator('#config-message', { hasText: `${payName}-eu` }).waitFor();
    const got = await apiCall(server, server.adminKey, 'POST', '/pangea/v1beta/config', { id: pay });
    assert.equal(got.json.result.name, `${payName}-eu`);
    assert.deepEqual(got.json.result.schema.fields.at(-1), { id: 'region', name: 'Region', type: 'string', ui_default_visible: true });
    assert.equal(await logged('UPDATE', pay), 1);
    await page.getByRole('link', { name: 'Search' }).click();
    await waitForResults(page);
    assert.match(page.url(), new RegExp(`config=${pay}`));
    await page.locator('#filter-field option[value="region"]').waitFor({ state: 'attached' });
    assert.match(await page.locator('#config-select option:checked').textContent(), new RegExp(`${payName}-eu`));
  });

  it('deleting a config with events is refused with a visible message; an empty one is deleted', async () => {
    await page.goto(`${server.url}/configs`);
    await page.locator('#configs-table').waitFor();
    await page.locator(`#configs-table tr[data-config="${pay}"]`).getByRole('button', { name: /^Delete config/ }).click();
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    await page.locator('#confirm-ok').click();
    const refusal = page.locator('#config-message.error');
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /holds 8 events/);
    assert.equal(await refusal.getAttribute('role'), 'alert');
    assert.equal(await page.locator(`#configs-table tr[data-config="${pay}"]`).count(), 1);
    assert.equal(await logged('DELETE', pay), 0);

    const empty = (await apiCall(server, server.adminKey, 'POST', '/pangea/v1beta/config/create', { name: `empty-${tag}` })).json.result.id;
    await page.reload();
    const row = page.locator(`#configs-table tr[data-config="${empty}"]`);
    await row.locator('td.config-events', { hasText: /^0$/ }).waitFor();
    await row.getByRole('button', { name: /^Delete config/ }).click();
    await page.locator('#confirm-cancel').click();
    assert.equal(await row.count(), 1, 'cancel keeps it');
    await row.getByRole('button', { name: /^Delete config/ }).click();
    await page.locator('#confirm-ok').click();
    await page.locator('#config-message', { hasText: 'deleted' }).waitFor();
    await row.waitFor({ state: 'detached' });
    const gone = await apiCall(server, server.adminKey, 'POST', '/pangea/v1beta/config', { id: empty });
    assert.equal(gone.json.status, 'NotFound');
    assert.equal(await logged('DELETE', empty), 1);
  });

  it('a search key sees no Configs link or page', async () => {
    const key = await createKey(server, { name: `search-${tag}`, scopes: ['search'] });
    const { page: p6 } = await newPage(browser.context);
    await signIn(p6, server, key);
    await waitForResults(p6);
    assert.equal(await p6.getByRole('link', { name: 'Configs' }).count(), 0);
    await p6.goto(`${server.url}/configs`);
    await p6.locator('#configs-body', { hasText: 'admin key' }).waitFor();
    await p6.close();
  });

  it('the Configs page passes axe in light and dark mode (screenshots saved)', async () => {
    await page.goto(`${server.url}/configs`);
    await page.locator('#configs-table').waitFor();
    await page.locator(`#configs-table tr[data-config="${pay}"]`).getByRole('button', { name: /^Open config/ }).click();
    await page.locator('#config-schema-table').waitFor();
    await page.locator('#config-schema-fields').check();
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const [w, hgt, size] of [[1400, 900, 'laptop'], [390, 844, 'phone']]) {
        await page.setViewportSize({ width: w, height: hgt });
        await axe(page, `configs (${scheme}, ${size})`);
        await page.evaluate(() => window.scrollTo(0, 0));
        await screenshot(page, `page-configs-${size}-${scheme}`);
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1400, height: 900 });
    assert.deepEqual(problems.pageErrors, []);
  });
});
