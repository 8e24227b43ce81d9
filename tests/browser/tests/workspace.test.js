// A key limited to workspaces/w1 never sees events of other workspaces: search, filters,
// detail links, live tail, export.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, stopServer, logEvents, logH2oEvent, createKey, launchBrowser, newPage, signIn, waitForResults, uid } from '../lib/harness.js';

describe('workspace-limited key', () => {
  let server; let browser; let page; let key;
  const tag = `ws${uid()}`;
  let w2Hash;

  before(async () => {
    server = await startServer();
    const hashes = await logEvents(server, server.adminKey, [
      { message: `${tag} in w1 a`, actor: 'alice', tenant_id: 'workspaces/w1' },
      { message: `${tag} in w1 b`, actor: 'bob', tenant_id: 'workspaces/w1' },
      { message: `${tag} in w2 secret`, actor: 'alice', tenant_id: 'workspaces/w2' },
      { message: `${tag} no workspace`, actor: 'alice' },
    ]);
    w2Hash = hashes[2];
    await logH2oEvent(server, server.adminKey, { resource: '//engine-manager/workspaces/w2/daiEngines/x', metadata: { message: `${tag} h2o w2` } });
    await logH2oEvent(server, server.adminKey, { resource: '//engine-manager/workspaces/w1/daiEngines/x', metadata: { message: `${tag} h2o w1` } });
    key = await createKey(server, { name: 'w1-reviewer', scopes: ['search'], workspaces: ['workspaces/w1'] });
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await signIn(page, server, key);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('shows its workspaces and only their events', async () => {
    assert.match(await page.locator('#identity').textContent(), /workspaces\/w1/);
    await page.goto(`${server.url}/?q=${encodeURIComponent(tag)}`);
    await waitForResults(page);
    const messages = await page.locator('#result-rows td.col-message').allTextContents();
    assert.deepEqual(messages.sort(), [`${tag} h2o w1`, `${tag} in w1 a`, `${tag} in w1 b`].sort());
    const tenants = await page.locator('#result-rows td.col-tenant_id').allTextContents();
    assert.ok(tenants.every((t) => t === 'workspaces/w1'));
  });

  it('a filter on another workspace finds nothing, and a link to its event shows nothing', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(tag)}&f=tenant_id%3Dworkspaces%2Fw2`);
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^0 events$/);
    await page.goto(`${server.url}/?q=${encodeURIComponent(tag)}&ev=${w2Hash}`);
    await waitForResults(page);
    await page.locator('#detail-body', { hasText: 'not in the loaded results' }).waitFor();
    assert.equal(await page.locator('#detail-body').textContent().then((t) => t.includes('secret')), false);
  });

  it('live tail and export stay inside the workspace', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(tag)}`);
    await waitForResults(page);
    await page.locator('#live-toggle').click();
    await page.locator('#live-status', { hasText: /^Live/ }).waitFor({ timeout: 15000 });
    await logEvents(server, server.adminKey, [
      { message: `${tag} live w2`, tenant_id: 'workspaces/w2' },
      { message: `${tag} live w1`, tenant_id: 'workspaces/w1' },
    ]);
    await page.locator('#live-rows tr', { hasText: `${tag} live w1` }).waitFor({ timeout: 15000 });
    await page.waitForTimeout(500);
    assert.equal(await page.locator('#live-rows tr', { hasText: 'w2' }).count(), 0);
    await page.locator('#live-toggle').click();

    await page.locator('#export-menu summary').click();
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 20000 }), page.locator('#export-menu button[data-format="json"]').click()]);
    let text = await readFile(await dl.path());
    if (text[0] === 0x1f) text = (await import('node:zlib')).gunzipSync(text);
    text = text.toString('utf8');
    assert.ok(text.includes(`${tag} in w1 a`));
    assert.ok(!text.includes('w2 secret') && !text.includes('h2o w2') && !text.includes('live w2'));
  });
});
