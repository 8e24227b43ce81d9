// Event text is untrusted: XSS payloads render as inert text.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopServer, logEvents, logH2oEvent, launchBrowser, newPage, signIn, waitForResults, uid } from '../lib/harness.js';

const PAYLOADS = [
  '<img src=x onerror=alert(1)>',
  '<script>alert(2)</script>',
  '"><svg onload=alert(3)>',
  '<iframe src="javascript:alert(4)"></iframe>',
  "javascript:alert(5)",
  '{{7*7}} ${alert(6)}',
];

describe('untrusted event text', () => {
  let server; let browser; let page; let problems;
  const tag = `xss${uid()}`;

  before(async () => {
    server = await startServer();
    const events = PAYLOADS.map((p, i) => ({
      message: `${tag} ${p}`, actor: p, action: `a${i}<b>`, target: p, status: p.slice(0, 32), source: p,
      new: JSON.stringify({ html: p, [p]: 1 }), old: p,
    }));
    await logEvents(server, server.adminKey, events);
    await logH2oEvent(server, server.adminKey, { metadata: { message: `${tag} h2o`, xss_value: '<script>alert(8)</script>' }, principal: '<img src=y onerror=alert(7)>', userAgent: PAYLOADS[0] });
    browser = await launchBrowser();
    ({ page, problems } = await newPage(browser.context));
    await signIn(page, server, server.adminKey);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('renders payloads as text in the table, chips and detail; no dialog fires', async () => {
    const title = await page.title();
    await page.goto(`${server.url}/?q=${encodeURIComponent(tag)}&f=${encodeURIComponent('actor:<img')}`);
    await waitForResults(page);
    await page.goto(`${server.url}/?q=${encodeURIComponent(tag)}`);
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^7 events$/);
    await page.locator('#columns-menu summary').click();
    await page.locator('#col-toggle-user_agent').check();
    await page.keyboard.press('Escape');
    const cells = page.locator('#results-table tbody td');
    assert.equal(await page.locator('#results-table tbody img, #results-table tbody script, #results-table tbody iframe, #results-table tbody svg').count(), 0);
    assert.ok((await cells.allTextContents()).some((t) => t === PAYLOADS[0]));

    for (let i = 0; i < 7; i++) {
      await page.locator('#result-rows tr').nth(i).click();
      await page.locator('#detail-body dl').first().waitFor();
      assert.equal(await page.locator('#detail img, #detail script, #detail iframe, #detail svg').count(), 0);
      await page.locator('#detail-close').click();
      await page.locator('#detail').waitFor({ state: 'hidden' });
    }
    // a filter chip holding a payload
    await page.locator('#filter-value').fill(PAYLOADS[1]);
    await page.locator('#filter-form button[type=submit]').click();
    await waitForResults(page);
    assert.equal(await page.locator('#chips script').count(), 0);
    assert.ok((await page.locator('#chips').textContent()).includes(PAYLOADS[1]));

    await page.waitForTimeout(300);
    assert.deepEqual(problems.dialogs, []);
    assert.deepEqual(problems.pageErrors, []);
    assert.equal(await page.title(), title);
    assert.equal(await page.evaluate(() => document.querySelectorAll('script:not([src])').length), 0);
  });
});
