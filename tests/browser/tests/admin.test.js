// The administration pages: keys (create with the secret shown once, the new key works, revoke
// with confirmation takes effect at once, both logged), retention (policy, purge now), and the
// integrity page (signed root checked in the browser, checkpoint, verify now on the server, a
// tampered event found). A key without admin scope sees no admin page.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startServer, stopServer, logEvents, createKey, apiCall, tamperEnvelope, launchBrowser, newPage, signIn, waitForResults, uid,
  screenshot, axe,
} from '../lib/harness.js';

describe('keys page', () => {
  let server; let browser; let page; let problems;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page, problems } = await newPage(browser.context));
    await page.setViewportSize({ width: 1400, height: 900 });
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await signIn(page, server, server.adminKey);
    await waitForResults(page);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('creates a key: the secret is shown once, copies, and works', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.locator('#keys-table').waitFor();
    assert.match(page.url(), /\/keys$/);
    assert.equal(await page.title(), 'API keys · Trailkeep');
    const name = `ci-${uid()}`;
    // a name is required
    await page.locator('#key-create').click();
    await page.locator('#key-create-error', { hasText: 'name' }).waitFor();
    await page.locator('#key-name').fill(name);
    await page.locator('#key-scope-ingest').check();
    await page.locator('#key-workspaces').fill('workspaces/w9, workspaces/w8');
    await page.locator('#key-create').click();
    const secretEl = page.locator('#key-secret-value');
    await secretEl.waitFor();
    const secret = (await secretEl.textContent()).trim();
    assert.match(secret, /^tk_[0-9a-f]{16}_[0-9a-f]+$/);
    await page.locator('#key-secret .warning', { hasText: 'only time' }).waitFor();
    await page.getByRole('button', { name: 'Copy the new key' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);

    const who = await apiCall(server, secret, 'GET', '/api/v1/whoami');
    assert.equal(who.status, 200);
    assert.deepEqual(who.json.scopes.sort(), ['ingest', 'search']);
    assert.deepEqual(who.json.workspaces, ['workspaces/w9', 'workspaces/w8']);
    const logged = await apiCall(server, secret, 'POST', '/pangea/v1/log', { event: { message: 'from the new key', tenant_id: 'workspaces/w9' } });
    assert.equal(logged.status, 200, logged.text);

    await page.locator('#key-secret-done').click();
    await page.locator(`#keys-table tr[data-key="${who.json.key_id}"]`).waitFor();
    assert.equal(await page.locator('#key-secret').isVisible(), false);
    assert.ok(!(await page.locator('body').textContent()).includes(secret), 'the secret is gone from the page');
    await page.reload();
    await page.locator(`#keys-table tr[data-key="${who.json.key_id}"]`).waitFor();
    assert.ok(!(await page.locator('body').textContent()).includes(secret));
    const created = await apiCall(server, server.adminKey, 'POST', '/pangea/v1/search',
      { query: `action="actions/audittrail/keys/CREATE" AND target:"${who.json.key_id}"`, start: '1d' });
    assert.equal(created.json.result.count, 1, 'the creation is logged');
  });

  it('revokes a key after confirmation; it stops working at once', async () => {
    const secret = await createKey(server, { name: 'to-revoke', scopes: ['search'] });
    const id = secret.split('_')[1];
    await page.reload();
    const row = page.locator(`#keys-table tr[data-key="${id}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: /^Revoke key to-revoke/ }).click();
    const dialog = page.locator('#confirm-dialog');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /stops working at once/);
    await page.locator('#confirm-cancel').click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await apiCall(server, secret, 'GET', '/api/v1/whoami')).status, 200, 'cancel keeps the key');
    await row.getByRole('button', { name: /^Revoke key to-revoke/ }).click();
    await page.locator('#confirm-ok').click();
    await page.locator(`#keys-table tr[data-key="${id}"].revoked`).waitFor();
    assert.equal((await apiCall(server, secret, 'GET', '/api/v1/whoami')).status, 401);
    const revoked = await apiCall(server, server.adminKey, 'POST', '/pangea/v1/search',
      { query: `action="actions/audittrail/keys/REVOKE" AND target:"${id}"`, start: '1d' });
    assert.equal(revoked.json.result.count, 1, 'the revocation is logged');
    assert.deepEqual(problems.pageErrors, []);
  });

  it('a key without admin scope sees neither the Keys nor the Retention link, nor the pages', async () => {
    const reviewer = await createKey(server, { name: 'reviewer', scopes: ['search'] });
    const { page: p2 } = await newPage(browser.context);
    await signIn(p2, server, reviewer);
    await waitForResults(p2);
    assert.equal(await p2.locator('#nav-keys').isVisible(), false);
    assert.equal(await p2.locator('#nav-retention').isVisible(), false);
    assert.equal(await p2.locator('#nav-integrity').isVisible(), true);
    await p2.goto(`${server.url}/keys`);
    await p2.locator('#keys-body .message', { hasText: 'needs an admin key' }).waitFor();
    await p2.goto(`${server.url}/integrity`);
    await p2.locator('#verify-card').waitFor();
    assert.equal(await p2.locator('#verify-now').count(), 0);
    await p2.close();
  });
});

describe('retention page', () => {
  let server; let browser; let page;

  before(async () => {
    server = await startServer({ args: ['--retention-default', '1s'] });
    await logEvents(server, server.adminKey, Array.from({ length: 5 }, (_, i) => ({ message: `old ${i}`, tenant_id: 'w1' })));
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await page.setViewportSize({ width: 1400, height: 900 });
    await signIn(page, server, server.adminKey);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('shows the policy and purges now after confirmation', async () => {
    await page.goto(`${server.url}/retention`);
    await page.locator('#retention-state', { hasText: 'On' }).waitFor();
    assert.match(await page.locator('#view-retention').textContent(), /Default period\s*1s/);
    await new Promise((r) => setTimeout(r, 1100));
    await page.locator('#purge-now').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#purge-result', { hasText: /Purged \d+ events/ }).waitFor({ timeout: 15000 });
    const purged = Number(/Purged (\d+)/.exec(await page.locator('#purge-result').textContent())[1]);
    assert.ok(purged >= 5, `${purged}`);
    await page.locator('#retention-last', { hasText: 'Done' }).waitFor();
    const after = await apiCall(server, server.adminKey, 'POST', '/pangea/v1/search', { query: 'message:old', start: '1d' });
    assert.equal(after.json.result.count, 0);
  });
});

describe('integrity page', () => {
  let server; let browser; let page;
  const tag = `int${uid()}`;

  before(async () => {
    server = await startServer();
    await logEvents(server, server.adminKey, Array.from({ length: 30 }, (_, i) => ({ message: `${tag} ${i}` })));
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await page.setViewportSize({ width: 1400, height: 900 });
    await signIn(page, server, server.adminKey);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('checks the newest root in the browser, shows the checkpoint and verifies on the server', async () => {
    await page.getByRole('link', { name: 'Integrity' }).click();
    await page.locator('#root-verdict.ok', { hasText: 'Signature verified' }).waitFor({ timeout: 15000 });
    await page.locator('#checkpoint-state', { hasText: 'Consistent' }).waitFor();
    assert.equal(await page.locator('#card-replication').count(), 0, 'no replication section without replication');
    assert.match(await page.locator('#view-integrity').textContent(), /Events\s*30/);
    await page.locator('#verify-now').click();
    await page.locator('#verify-last.ok', { hasText: 'No problems found' }).waitFor({ timeout: 30000 });
    assert.match(await page.locator('#verify-card').textContent(), /Events checked\s*31/);
  });

  it('finds a tampered event', async () => {
    assert.equal(await tamperEnvelope(server, { from: `${tag} 7`, to: `${tag} 8`, whereLike: `%${tag} 7"%` }), 1);
    await page.reload();
    await page.locator('#verify-now').click();
    await page.locator('#verify-last.bad', { hasText: 'problem' }).waitFor({ timeout: 30000 });
    assert.match(await page.locator('#verify-card .problems').textContent(), /leaf_mismatch: event \d+: the envelope does not hash/);
  });
});

describe('integrity page with replication', () => {
  let server; let browser; let archive; let target;

  before(async () => {
    archive = await mkdtemp(join(tmpdir(), 'trailkeep-ui-archive-'));
    target = `file://${archive}/trail`;
    server = await startServer({ args: ['--replicate-to', target, '--replication-interval', '1s'] });
    await logEvents(server, server.adminKey, Array.from({ length: 12 }, (_, i) => ({ message: `replicated ${i}` })));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
    if (archive) await rm(archive, { recursive: true, force: true });
  });

  it('shows the target to admins and the lag to every reviewer', async () => {
    const { page } = await newPage(browser.context);
    await page.setViewportSize({ width: 1400, height: 900 });
    await signIn(page, server, server.adminKey);
    await page.getByRole('link', { name: 'Integrity' }).click();
    const card = page.locator('section[aria-labelledby="card-replication"]');
    await card.waitFor();
    assert.match(await card.textContent(), new RegExp(`Target\\s*${target.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    // The uploader runs every second: reload until it reports no lag.
    for (let i = 0; ; i++) {
      if (/Up to date/.test(await page.locator('#replication-state').textContent())) break;
      assert.ok(i < 30, `not replicated: ${await card.textContent()}`);
      await page.waitForTimeout(500);
      await page.reload();
      await page.locator('#replication-state').waitFor();
    }
    assert.match(await page.locator('#replication-lag').textContent(), /every committed event is in the target/);
    assert.match(await card.textContent(), /Events in the target\s*1[2-9]/);
    await axe(page, 'integrity with replication (light)');
    await screenshot(page, 'page-integrity-replication-laptop-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await axe(page, 'integrity with replication (dark)');
    await screenshot(page, 'page-integrity-replication-laptop-dark');
    await page.close();

    const reviewer = await createKey(server, { name: 'reviewer', scopes: ['search'] });
    const { page: p2 } = await newPage(browser.context);
    await signIn(p2, server, reviewer);
    await p2.getByRole('link', { name: 'Integrity' }).click();
    const card2 = p2.locator('section[aria-labelledby="card-replication"]');
    await card2.waitFor();
    assert.match(await card2.textContent(), /Target\s*shown to admin keys/);
    assert.ok(!(await card2.textContent()).includes(archive), 'no target for a search key');
    assert.match(await p2.locator('#replication-lag').textContent(), /every committed event is in the target|not yet copied/);
    await p2.close();
  });
});
