// Live tail: new events appear as they are logged, respecting filters; pause buffers them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopServer, logEvents, launchBrowser, newPage, signIn, waitForResults, uid } from '../lib/harness.js';

describe('live tail', () => {
  let server; let browser; let page;
  const tag = `live${uid()}`;

  before(async () => {
    server = await startServer();
    await logEvents(server, server.adminKey, [{ message: `${tag} before`, actor: 'alice' }]);
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await signIn(page, server, server.adminKey);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('shows newly logged matching events and skips others', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&f=actor%3Dalice`);
    await waitForResults(page);
    await page.locator('#live-toggle').click();
    assert.equal(await page.locator('#live-toggle').getAttribute('aria-pressed'), 'true');
    await page.locator('#live-status', { hasText: /^Live/ }).waitFor({ timeout: 15000 });

    await logEvents(server, server.adminKey, [
      { message: `${tag} new for alice`, actor: 'alice', action: 'login' },
      { message: `${tag} new for bob`, actor: 'bob', action: 'login' },
    ]);
    await page.locator('#live-rows tr', { hasText: `${tag} new for alice` }).waitFor({ timeout: 15000 });
    await page.waitForTimeout(500);
    assert.equal(await page.locator('#live-rows tr', { hasText: `${tag} new for bob` }).count(), 0);
    assert.match(await page.locator('#live-status').textContent(), /1 new/);

    // a live event opens and verifies like any other
    await page.locator('#live-rows tr').first().click();
    await page.locator('#verify-button').click();
    await page.locator('#verify-badge.ok, #verify-badge.bad').waitFor({ timeout: 15000 });
    assert.equal((await page.locator('#verify-badge').textContent()).trim(), '✓ Verified', await page.locator('#verify-checks').textContent());
    await page.locator('#detail-close').click();
  });

  it('pauses and resumes', async () => {
    await page.locator('#live-pause').click();
    assert.equal(await page.locator('#live-pause').getAttribute('aria-pressed'), 'true');
    await logEvents(server, server.adminKey, [{ message: `${tag} while paused`, actor: 'alice' }]);
    await page.locator('#live-status', { hasText: /1 new waiting/ }).waitFor({ timeout: 15000 });
    assert.equal(await page.locator('#live-rows tr', { hasText: `${tag} while paused` }).count(), 0);
    await page.locator('#live-pause').click();
    await page.locator('#live-rows tr', { hasText: `${tag} while paused` }).waitFor();
    assert.equal(await page.locator('#live-rows tr').count(), 2);

    await page.locator('#live-toggle').click();
    assert.equal(await page.locator('#live-toggle').getAttribute('aria-pressed'), 'false');
    await logEvents(server, server.adminKey, [{ message: `${tag} after stop`, actor: 'alice' }]);
    await page.waitForTimeout(700);
    assert.equal(await page.locator('#live-rows tr', { hasText: `${tag} after stop` }).count(), 0);
  });
});
