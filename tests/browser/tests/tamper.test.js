// An envelope changed in the database after logging makes Verify fail, with a reason.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopServer, logEvents, launchBrowser, newPage, signIn, waitForResults, tamperEnvelope, uid } from '../lib/harness.js';

describe('tampered event', () => {
  let server; let browser; let page;
  const tag = `tamper${uid()}`;

  before(async () => {
    server = await startServer();
    await logEvents(server, server.adminKey, [
      { message: `${tag} honest`, actor: 'alice', action: 'login', status: 'success' },
      { message: `${tag} victim`, actor: 'mallory', action: 'transfer', target: 'acct-1', status: 'success', new: '{"amount":"100"}' },
    ]);
    // Change the stored envelope text behind the server's back (the server keeps running).
    const changed = await tamperEnvelope(server, { from: '"amount\\":\\"100', to: '"amount\\":\\"999', whereLike: `%${tag} victim%` });
    assert.equal(changed, 1, 'one row tampered');
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await signIn(page, server, server.adminKey);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  async function verify(message) {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${message}"`)}`);
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^1 event$/);
    await page.locator('#result-rows tr').first().click();
    await page.locator('#verify-button').click();
    await page.locator('#verify-badge.ok, #verify-badge.bad').waitFor({ timeout: 15000 });
    return {
      badge: (await page.locator('#verify-badge').textContent()).trim(),
      reason: (await page.locator('#verify-reason').textContent()).trim(),
      checks: await page.locator('#verify-checks').textContent(),
    };
  }

  it('the untouched event still verifies', async () => {
    const r = await verify(`${tag} honest`);
    assert.equal(r.badge, '✓ Verified', r.checks);
  });

  it('the tampered event fails with a reason', async () => {
    const r = await verify(`${tag} victim`);
    assert.equal(r.badge, '✗ Failed');
    assert.match(r.reason, /^Reason: the (event hash does not match its content|membership proof does not lead to the root)/);
    assert.match(await page.locator('#raw-envelope').textContent(), /999/);
  });
});
