// Accessibility: axe-core finds no serious or critical violation on the sign-in page, the
// results (laptop and phone) and the detail view; the main flow works from the keyboard.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { startServer, stopServer, logEvents, launchBrowser, newPage, waitForResults, uid } from '../lib/harness.js';

const require = createRequire(import.meta.url);
const AXE = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

async function axe(page, label) {
  // page.evaluate runs through the DevTools protocol, so the page's CSP does not block it.
  const result = await page.evaluate(`${AXE}; axe.run(document, { resultTypes: ['violations'] })`);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const text = bad.map((v) => `${label}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
  assert.deepEqual(text, []);
}

describe('accessibility', () => {
  let server; let browser; let page;
  const tag = `a11y${uid()}`;

  before(async () => {
    server = await startServer();
    await logEvents(server, server.adminKey, Array.from({ length: 12 }, (_, i) => ({
      message: `${tag} event ${i}`, actor: i % 2 ? 'alice' : 'bob', action: 'update', status: i % 3 ? 'success' : 'failure',
      old: JSON.stringify({ v: i }), new: JSON.stringify({ v: i + 1 }),
    })));
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('signs in, searches, filters and opens an event with the keyboard only', async () => {
    await page.goto(server.url + '/');
    await axe(page, 'sign-in');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'signin-key');
    await page.keyboard.type(server.adminKey);
    await page.keyboard.press('Enter');
    await page.locator('#app').waitFor({ state: 'visible' });
    await waitForResults(page);

    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'q');
    await page.keyboard.type(`message:"${tag}"`);
    await page.keyboard.press('Enter');
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^12 events$/);

    await page.locator('#filter-value').focus();
    await page.keyboard.type('alice');
    await page.keyboard.press('Enter');
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^6 events$/);

    // Tab from the chip's remove button onwards reaches the first row link; arrows move between rows
    await page.locator('.chip button').focus();
    for (let i = 0; i < 40 && !(await page.evaluate(() => document.activeElement.classList.contains('row-link'))); i++) await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => document.activeElement.classList.contains('row-link')), 'a row link is reachable by Tab');
    await page.keyboard.press('ArrowDown');
    const second = await page.evaluate(() => document.activeElement.closest('tr').dataset.hash);
    await page.keyboard.press('Enter');
    await page.locator('#detail').waitFor({ state: 'visible' });
    assert.match(page.url(), new RegExp(`ev=${second}`));
    await axe(page, 'detail');
    await page.locator('#verify-button').focus();
    await page.keyboard.press('Enter');
    await page.locator('#verify-badge.ok').waitFor({ timeout: 15000 });
    await page.keyboard.press('Escape');
    await page.locator('#detail').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.hash), second, 'focus returns to the row');
    await axe(page, 'results');

    await page.setViewportSize({ width: 390, height: 844 });
    await axe(page, 'results on a phone');
  });

  it('every form control has a label', async () => {
    const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
      .filter((el) => !el.closest('[hidden]') && !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
      .map((el) => el.id || el.tagName));
    assert.deepEqual(unlabeled, []);
  });
});
