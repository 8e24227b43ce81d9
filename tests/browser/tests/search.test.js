// Sign-in, search with the query bar and filter chips (URL + back button), paging, column
// chooser, event detail with in-browser verification, sign-out.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, logEvents, logH2oEvent, createKey, launchBrowser, newPage, signIn, waitForResults, screenshot, uid,
} from '../lib/harness.js';

describe('search, filters and detail', () => {
  let server; let browser; let page; let problems; let searchKey;
  const tag = `run${uid()}`;
  const h2oTag = `h2o${uid()}`;
  const actors = ['alice', 'bob', 'carol'];

  before(async () => {
    server = await startServer();
    const now = Date.now();
    const events = [];
    for (let i = 0; i < 45; i++) {
      events.push({
        message: `${tag} event ${i}`, actor: actors[i % 3], action: i % 2 ? 'update' : 'login', target: `doc-${i % 5}`,
        status: i % 4 === 0 ? 'failure' : 'success', tenant_id: 'workspaces/w1', source: `198.51.100.${i}`,
        timestamp: new Date(now - i * 1000).toISOString(),
        old: JSON.stringify({ role: 'viewer', seq: i }), new: JSON.stringify({ role: 'editor', seq: i, extra: true }),
      });
    }
    await logEvents(server, server.adminKey, events);
    await logH2oEvent(server, server.adminKey, { metadata: { message: `${h2oTag} from h2o`, note: 'n' } });
    searchKey = await createKey(server, { name: 'reviewer', scopes: ['search'] });
    browser = await launchBrowser();
    ({ page, problems } = await newPage(browser.context));
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('rejects a wrong key with a message', async () => {
    await page.goto(server.url + '/');
    await page.locator('#signin-key').fill('tk_nope_wrong');
    await page.locator('#signin-submit').click();
    await page.locator('#signin-error').filter({ hasText: /not accept/i }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  it('signs in and shows what the key may see', async () => {
    await signIn(page, server, searchKey);
    const ident = await page.locator('#identity').textContent();
    assert.match(ident, /reviewer/);
    assert.match(ident, /search/);
    assert.match(ident, /all/); // all workspaces
    assert.equal(await page.evaluate(() => document.cookie), '');
    await waitForResults(page);
  });

  it('searches with the query bar; filters become chips and URL parameters; back restores them', async () => {
    await page.locator('#q').fill(`message:"${tag}"`);
    await page.locator('#search-form button[type=submit]').click();
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^45 events$/);
    assert.match(page.url(), /q=message%3A%22run/);

    await page.locator('#filter-field').selectOption('actor');
    await page.locator('#filter-op').selectOption(':');
    await page.locator('#filter-value').fill('alice');
    await page.locator('#filter-value').press('Enter');
    await waitForResults(page);
    await page.locator('.chip', { hasText: 'alice' }).waitFor();
    assert.match(page.url(), /f=actor%3Aalice/);
    assert.match(await page.locator('#result-count').textContent(), /^15 events$/);
    const actorsShown = await page.locator('#result-rows td.col-actor').allTextContents();
    assert.ok(actorsShown.length === 15 && actorsShown.every((a) => a === 'alice'));

    await page.locator('#filter-field').selectOption('status');
    await page.locator('#filter-op').selectOption('=');
    await page.locator('#filter-value').fill('failure');
    await page.locator('#filter-form button[type=submit]').click();
    await waitForResults(page);
    assert.equal(await page.locator('.chip').count(), 2);
    assert.match(await page.locator('#result-count').textContent(), /^4 events$/); // i ≡ 0 mod 12
    const statuses = await page.locator('#result-rows td.col-status').allTextContents();
    assert.ok(statuses.every((s) => s === 'failure'));

    // remove the actor chip with its × button
    await page.getByRole('button', { name: /Remove filter Actor contains alice/ }).click();
    await waitForResults(page);
    assert.equal(await page.locator('.chip').count(), 1);
    assert.doesNotMatch(page.url(), /actor/);
    assert.match(await page.locator('#result-count').textContent(), /^12 events$/);

    // back button brings the chip back
    await page.goBack();
    await waitForResults(page);
    assert.equal(await page.locator('.chip').count(), 2);
    assert.match(await page.locator('#result-count').textContent(), /^4 events$/);

    // the URL is shareable: a reload restores the same search
    const url = page.url();
    await page.reload();
    await waitForResults(page);
    assert.equal(page.url(), url);
    assert.equal(await page.locator('.chip').count(), 2);
    assert.equal(await page.locator('#q').inputValue(), `message:"${tag}"`);
    assert.match(await page.locator('#result-count').textContent(), /^4 events$/);
  });

  it('shows a clear error for a query the server rejects', async () => {
    await page.locator('#q').fill('actor:alice (');
    await page.locator('#q').press('Enter');
    await page.locator('#results-message.error', { hasText: 'Search failed' }).waitFor({ timeout: 15000 });
    assert.equal(await page.locator('#results-message').getAttribute('role'), 'alert');
    assert.equal(await page.locator('#results-message button', { hasText: 'Retry' }).count(), 1);
  });

  it('time range presets and a custom range filter by receive time', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}`);
    await waitForResults(page);
    await page.locator('#range').selectOption('15m');
    await waitForResults(page);
    assert.match(page.url(), /range=15m/);
    assert.match(await page.locator('#result-count').textContent(), /^45 events$/);
    // a custom range that ended yesterday holds none of them
    const start = new Date(Date.now() - 3 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');
    const end = new Date(Date.now() - 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&range=custom&start=${start}&end=${end}`);
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^0 events$/);
    await page.locator('#results-message.empty').waitFor();
    await page.locator('.chip', { hasText: 'Time:' }).waitFor();
    assert.equal(await page.locator('#custom-range').isVisible(), true);
  });

  it('pages through results and chooses columns', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&size=20`);
    await waitForResults(page);
    assert.equal(await page.locator('#result-rows tr').count(), 20);
    assert.match(await page.locator('#page-total').textContent(), /of 3/);
    const first = await page.locator('#result-rows td.col-message').allTextContents();
    await page.locator('#page-next').click();
    await waitForResults(page);
    assert.match(page.url(), /page=2/);
    const second = await page.locator('#result-rows td.col-message').allTextContents();
    assert.equal(second.length, 20);
    assert.equal(first.filter((m) => second.includes(m)).length, 0);
    await page.locator('#page-last').click();
    await waitForResults(page);
    assert.equal(await page.locator('#result-rows tr').count(), 5);
    // newest first across pages: event 44 was logged last, event 0 first
    assert.equal(first[0], `${tag} event 44`);
    assert.deepEqual(await page.locator('#result-rows td.col-message').allTextContents(), [4, 3, 2, 1, 0].map((i) => `${tag} event ${i}`));

    await page.locator('#columns-menu summary').click();
    await page.locator('#col-toggle-hash').check();
    await page.locator('#col-toggle-message').uncheck();
    await page.keyboard.press('Escape');
    assert.equal(await page.locator('#results-head th.col-hash').count(), 1);
    assert.equal(await page.locator('#results-head th.col-message').count(), 0);
    assert.match(await page.locator('#result-rows td.col-hash').first().textContent(), /^[0-9a-f]{64}$/);
    await page.locator('#columns-menu summary').click();
    await page.getByRole('button', { name: 'Reset columns' }).click();
    await page.keyboard.press('Escape');
    assert.equal(await page.locator('#results-head th.col-message').count(), 1);

    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&f=status%3Dfailure&f=actor%3Aa`);
    await waitForResults(page);
    await screenshot(page, 'results-filtered');
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}`);
    await waitForResults(page);
    await screenshot(page, 'results');
  });

  it('opens an event: every field, old/new diff, raw envelope, hash, leaf index, proof; Verify says Verified', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag} event 7"`)}`);
    await waitForResults(page);
    // keyboard: focus the row link and press Enter
    await page.locator('#result-rows a.row-link').first().focus();
    await page.keyboard.press('Enter');
    await page.locator('#detail').waitFor({ state: 'visible' });
    assert.match(page.url(), /ev=[0-9a-f]{64}/);
    const detail = page.locator('#detail-body');
    for (const f of ['message', 'actor', 'action', 'target', 'status', 'source', 'tenant_id', 'timestamp', 'received_at', 'hash', 'leaf_index']) {
      assert.equal(await detail.locator('dt', { hasText: new RegExp(`^${f}$`) }).count() >= 1, true, `field ${f} shown`);
    }
    assert.ok(await detail.locator('.diff-line.add', { hasText: '"role": "editor"' }).count() === 1);
    assert.ok(await detail.locator('.diff-line.del', { hasText: '"role": "viewer"' }).count() === 1);
    assert.ok(await detail.locator('.diff-line.add', { hasText: '"extra": true' }).count() === 1);
    const raw = JSON.parse(await page.locator('#raw-envelope').textContent());
    assert.equal(raw.event.message, `${tag} event 7`);
    assert.ok(await detail.locator('ol.proof li').count() >= 1);

    await page.locator('#verify-button').click();
    await page.locator('#verify-badge.ok, #verify-badge.bad').waitFor({ timeout: 15000 });
    assert.equal((await page.locator('#verify-badge').textContent()).trim(), '✓ Verified', await page.locator('#verify-checks').textContent());
    await screenshot(page, 'detail');
    await page.locator('#detail-body h3', { hasText: 'Changes' }).scrollIntoViewIfNeeded();
    await screenshot(page, 'detail-diff');

    // phone-sized window: cards instead of a table, detail covers the list
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'detail-phone');
    await page.keyboard.press('Escape');
    await page.locator('#detail').waitFor({ state: 'hidden' });
    await screenshot(page, 'results-phone');
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.locator('#result-rows a.row-link').first().click();
    await page.locator('#detail').waitFor({ state: 'visible' });

    // Escape closes the detail and returns to the list
    await page.keyboard.press('Escape');
    await page.locator('#detail').waitFor({ state: 'hidden' });
    assert.doesNotMatch(page.url(), /ev=/);
  });

  it('verifies an event that came in through the H2O API and a whole page', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`"${h2oTag} from h2o"`)}`);
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^1 event$/);
    await page.locator('#result-rows tr').first().click();
    await page.locator('#detail-body dt', { hasText: /^metadata$/ }).waitFor();
    await page.locator('#verify-button').click();
    await page.locator('#verify-badge.ok, #verify-badge.bad').waitFor({ timeout: 15000 });
    assert.equal((await page.locator('#verify-badge').textContent()).trim(), '✓ Verified', await page.locator('#verify-checks').textContent());
    await page.locator('#detail-close').click();

    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&size=20`);
    await waitForResults(page);
    await page.locator('#verify-page').click();
    // the button reports progress until every row has a verdict, then the status line sums up
    await page.locator('#live-status', { hasText: /events? on this page/ }).waitFor({ timeout: 30000 });
    assert.equal(await page.locator('#verify-page').textContent(), 'Verify page');
    assert.equal((await page.locator('#live-status').textContent()).trim(), 'All 20 events on this page verified');
    assert.equal(await page.locator('#result-rows .vbadge.ok').count(), 20);
  });

  it('signs out and forgets the key', async () => {
    await page.locator('#signout').click();
    await page.locator('#signin').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.deepEqual(problems.pageErrors, []);
    assert.deepEqual(problems.external, []);
    assert.deepEqual(problems.dialogs, []);
  });
});
