// 10,000+ results: the count, paging to the end, the time to render 1,000 rows, and the time to
// show the results page with its timeline and top values (printed, not asserted).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopServer, logEvents, launchBrowser, newPage, signIn, waitForResults, waitForInsights, uid } from '../lib/harness.js';

describe('large result sets', () => {
  let server; let browser; let page;
  const tag = `perf${uid()}`;
  const N = 10500;

  before(async () => {
    server = await startServer();
    const events = [];
    for (let i = 0; i < N; i++) {
      events.push({
        message: `${tag} event ${i} with a moderately long message text to fill the column`, actor: `user${i % 97}@example.com`,
        action: ['login', 'read', 'update', 'delete'][i % 4], target: `//svc/workspaces/w1/objects/${i}`, status: i % 9 ? 'success' : 'failure',
        tenant_id: 'workspaces/w1', source: `192.0.2.${i % 250}`,
      });
    }
    const t0 = Date.now();
    await logEvents(server, server.adminKey, events);
    console.log(`seeded ${N} events in ${Date.now() - t0} ms`);
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await signIn(page, server, server.adminKey);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('renders 1,000 rows quickly and pages to the end', async () => {
    const t0 = Date.now();
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&size=1000`);
    await waitForResults(page);
    const firstLoad = Date.now() - t0;
    assert.match(await page.locator('#result-count').textContent(), /^10,000\+ events/);
    assert.match(await page.locator('#page-total').textContent(), /of 10$/);
    const rows = Number(await page.locator('#results-table').getAttribute('data-rows'));
    const renderMs = Number(await page.locator('#results-table').getAttribute('data-render-ms'));
    assert.equal(rows, 1000);
    console.log(`render of 1,000 result rows (DOM build + layout): ${renderMs.toFixed(1)} ms; first page incl. search: ${firstLoad} ms`);

    // next page (prefetched in the background) and a far page (fetched on demand)
    await page.waitForTimeout(1500);
    let t = Date.now();
    await page.locator('#page-next').click();
    await page.waitForFunction(() => /page=2/.test(location.search) && document.querySelector('#results-table').getAttribute('aria-busy') === 'false');
    console.log(`page 2 (prefetched): ${Date.now() - t} ms, render ${await page.locator('#results-table').getAttribute('data-render-ms')} ms`);
    t = Date.now();
    await page.locator('#page-last').click();
    await page.waitForFunction(() => /page=10/.test(location.search) && document.querySelector('#results-table').getAttribute('aria-busy') === 'false');
    console.log(`page 10 (on demand): ${Date.now() - t} ms, render ${await page.locator('#results-table').getAttribute('data-render-ms')} ms`);
    assert.equal(await page.locator('#result-rows tr').count(), 1000);
    assert.ok(renderMs < 2000, `1,000 rows rendered in ${renderMs} ms`);
  });

  it('shows the results page with the timeline and top values (times printed)', async () => {
    for (const run of [1, 2, 3]) {
      const t0 = Date.now();
      await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&range=24h&r=${run}`);
      await waitForResults(page);
      await waitForInsights(page);
      const wall = Date.now() - t0;
      const m = await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const mark = (n) => performance.getEntriesByName(n).map((e) => e.startTime).pop();
        const res = performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/v1/aggregate')).pop();
        return {
          rowsAt: mark('trailkeep:rows-rendered'), aggAt: mark('trailkeep:aggregate-rendered'), domContentLoaded: nav?.domContentLoadedEventEnd,
          aggRequest: res?.duration, rowsRender: Number(document.querySelector('#results-table').dataset.renderMs),
          aggRender: Number(document.querySelector('#timeline').dataset.renderMs), total: Number(document.querySelector('#timeline').dataset.total),
        };
      });
      assert.equal(m.total, N, 'the timeline counts every match, beyond the 10,000 results listed');
      console.log(`results page with timeline and top values, run ${run}: complete ${Math.max(m.rowsAt, m.aggAt).toFixed(0)} ms after navigation `
        + `(${wall} ms wall incl. sign-in check); aggregate request ${m.aggRequest?.toFixed(0)} ms, timeline+top values render ${m.aggRender.toFixed(1)} ms, `
        + `50 rows render ${m.rowsRender.toFixed(1)} ms`);
    }
  });
});
