// The API docs page (/docs/): Swagger UI from the binary renders /openapi.json under its CSP,
// loads nothing from other origins, and an authorised "Try it out" call reaches the server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopServer, launchBrowser, newPage, screenshot } from '../lib/harness.js';

describe('API docs page', () => {
  let server; let browser; let page; let problems;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page, problems } = await newPage(browser.context));
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('renders every operation of /openapi.json, grouped by tag', async () => {
    const doc = await (await fetch(`${server.url}/openapi.json`)).json();
    const expected = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).filter((k) => k !== 'parameters').length, 0);

    await page.goto(`${server.url}/docs`);
    assert.equal(new URL(page.url()).pathname, '/docs/');
    await page.locator('.swagger-ui .info .title', { hasText: 'trailkeep' }).waitFor({ timeout: 30000 });
    await page.locator('.opblock').first().waitFor();
    assert.equal(await page.locator('.opblock').count(), expected);
    const tags = await page.locator('.opblock-tag').allTextContents();
    for (const t of ['H2O Audit Trail', 'Pangea Secure Audit Log', 'UI & admin', 'Operations']) {
      assert.ok(tags.some((x) => x.includes(t)), `${t} in ${tags}`);
    }
    for (const p of ['/v1/events:batchCreate', '/pangea/v1/search', '/api/v1/whoami']) {
      assert.ok(await page.locator('.opblock-summary-path', { hasText: p }).count() > 0, p);
    }
    await screenshot(page, 'docs');
    assert.deepEqual(problems.external, []);
    assert.deepEqual(problems.pageErrors, []);
    assert.deepEqual(problems.consoleErrors.filter((e) => /Content Security Policy|Refused/.test(e)), []);
  });

  it('shows a schema and calls the API with the bearer key', async () => {
    await page.locator('.btn.authorize').click();
    await page.locator('.modal-ux input[type=text], .modal-ux input[type=password]').first().fill(server.adminKey);
    await page.locator('.modal-ux .auth-btn-wrapper .authorize').click();
    await page.locator('.modal-ux .close-modal').click();

    const op = page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: /^\/api\/v1\/whoami$/ }) });
    await op.locator('.opblock-summary').click();
    await op.locator('.try-out__btn').click();
    await op.locator('.execute').click();
    const status = op.locator('.live-responses-table tr.response .response-col_status').first();
    await status.waitFor({ timeout: 15000 });
    assert.equal((await status.textContent()).trim(), '200');
    assert.match(await op.locator('.live-responses-table tr.response .microlight').first().textContent(), /"scopes"/);
    await screenshot(page, 'docs-whoami');
    assert.deepEqual(problems.external, []);
    assert.deepEqual(problems.pageErrors, []);
  });
});
