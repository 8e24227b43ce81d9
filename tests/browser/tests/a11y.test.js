// Accessibility: axe-core finds no serious or critical violation on the sign-in page, the
// results (laptop and phone) and the detail view; every page (Configs included) in light and
// dark mode; the main flow works from the keyboard.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, logEvents, launchBrowser, newPage, waitForResults, waitForInsights, screenshot, uid, axe,
} from '../lib/harness.js';

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

  it('j and k move through the events, Enter opens one, j in the detail opens the next', async () => {
    await page.setViewportSize({ width: 1400, height: 900 });
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}`);
    await waitForResults(page);
    const rows = await page.locator('#result-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.hash));
    const focusedRow = () => page.evaluate(() => document.activeElement.closest('tr')?.dataset.hash);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('j');
    assert.equal(await focusedRow(), rows[0]);
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    assert.equal(await focusedRow(), rows[2]);
    await page.keyboard.press('k');
    assert.equal(await focusedRow(), rows[1]);
    await page.keyboard.press('Enter');
    await page.locator('#detail').waitFor({ state: 'visible' });
    assert.match(page.url(), new RegExp(`ev=${rows[1]}`));
    await page.keyboard.press('j');
    await page.waitForURL(new RegExp(`ev=${rows[2]}`));
    await page.locator('#detail-body .detail-message', { hasText: await page.locator(`#result-rows tr[data-hash="${rows[2]}"] td.col-message`).textContent() }).waitFor();
    await page.keyboard.press('Escape');
    await page.locator('#detail').waitFor({ state: 'hidden' });
    // typing in the query box is not navigation
    await page.keyboard.press('/');
    await page.locator('#q').fill('');
    await page.keyboard.type('jk');
    assert.equal(await page.locator('#q').inputValue(), 'jk');
    assert.match(page.url(), new RegExp(encodeURIComponent(tag)));
  });

  it('every page passes axe in light and dark mode, on a laptop and a phone (screenshots saved)', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}`);
    await waitForResults(page);
    const pages = [
      ['results', async () => { await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}`); await waitForResults(page); await waitForInsights(page); }],
      ['detail', async () => { await page.locator('#result-rows a.row-link').first().click(); await page.locator('#detail').waitFor({ state: 'visible' }); }],
      ['integrity', async () => { await page.goto(`${server.url}/integrity`); await page.locator('#root-verdict.ok').waitFor({ timeout: 15000 }); }],
      ['keys', async () => { await page.goto(`${server.url}/keys`); await page.locator('#keys-table').waitFor(); }],
      ['retention', async () => { await page.goto(`${server.url}/retention`); await page.locator('#retention-state').waitFor(); }],
      ['configs', async () => { await page.goto(`${server.url}/configs`); await page.locator('#configs-table .config-events', { hasText: /\d/ }).first().waitFor(); }],
    ];
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const [w, hgt, size] of [[1400, 900, 'laptop'], [390, 844, 'phone']]) {
        await page.setViewportSize({ width: w, height: hgt });
        for (const [name, open] of pages) {
          await open();
          await axe(page, `${name} (${scheme}, ${size})`);
          await screenshot(page, `page-${name}-${size}-${scheme}`);
        }
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1400, height: 900 });
  });

  it('every form control has a label', async () => {
    const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
      .filter((el) => !el.closest('[hidden]') && !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
      .map((el) => el.id || el.tagName));
    assert.deepEqual(unlabeled, []);
  });
});
