// The timeline and top values above and beside the results: their counts equal the search's,
// dragging across the timeline narrows the time range (URL and query follow), a top value adds or
// excludes a filter, a workspace-limited key sees only its workspaces, the live tail updates the
// counts, and an empty trail shows how to send a first event (the commands work as shown).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  startServer, stopServer, logEvents, createKey, launchBrowser, newPage, signIn, waitForResults, waitForInsights,
  resultCount, timelineSum, screenshot, uid,
} from '../lib/harness.js';

async function facetValues(page, field) {
  return page.locator(`.facet[data-field="${field}"] .facet-text`).allTextContents();
}

async function facetCount(page, field, value) {
  const row = page.locator(`.facet[data-field="${field}"] .facet-row`).filter({ has: page.locator('.facet-text', { hasText: new RegExp(`^${value}$`) }) });
  return Number((await row.locator('.facet-count').textContent()).replace(/[,≥]/g, ''));
}

describe('timeline and top values', () => {
  let server; let browser; let page; let problems; let limitedKey;
  const tag = `ins${uid()}`;

  before(async () => {
    server = await startServer();
    const events = [];
    for (let i = 0; i < 60; i++) {
      events.push({
        message: `${tag} event ${i}`, actor: ['alice', 'bob', 'carol'][i % 3], action: i % 2 ? 'update' : 'login',
        status: i % 5 === 0 ? 'failure' : i % 5 === 1 ? 'pending' : 'success', target: `doc-${i % 4}`, tenant_id: i % 4 === 3 ? 'w2' : 'w1',
      });
    }
    events.push({ message: `${tag} secret`, actor: 'mallory', action: 'exfiltrate', status: 'success', tenant_id: 'w2' });
    await logEvents(server, server.adminKey, events);
    limitedKey = await createKey(server, { name: 'w1-only', scopes: ['search'], workspaces: ['w1'] });
    browser = await launchBrowser();
    ({ page, problems } = await newPage(browser.context));
    await page.setViewportSize({ width: 1400, height: 900 });
    await signIn(page, server, server.adminKey);
    await waitForResults(page);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('counts what the search finds, for several queries', async () => {
    const queries = [`message:"${tag}"`, `message:"${tag}" actor:alice`, `message:"${tag}" status:failure`,
      `message:"${tag}" tenant_id=w2`, `message:"${tag}" -action:login`, `${tag} OR nothing-matches-this`];
    for (const q of queries) {
      await page.goto(`${server.url}/?q=${encodeURIComponent(q)}&range=24h`);
      await waitForResults(page);
      await waitForInsights(page);
      const n = await resultCount(page);
      assert.equal(await timelineSum(page), n, q);
      assert.equal(Number(await page.locator('#timeline').getAttribute('data-total')), n, q);
      const label = await page.locator('#timeline-chart').getAttribute('aria-label');
      assert.match(label, /^Events over time: /);
      assert.match(label, new RegExp(`${n} events?`));
    }
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&range=24h`);
    await waitForResults(page);
    await waitForInsights(page);
    assert.equal(await resultCount(page), 61);
    // outcomes: 12 failures (i % 5 == 0), 12 "pending" (no outcome), the rest successes
    const col = (k) => page.evaluate((k) => [...document.querySelectorAll('#timeline-rows tr')]
      .reduce((n, tr) => n + Number(tr.children[k].textContent.replace(/,/g, '')), 0), k);
    assert.deepEqual([await col(1), await col(2), await col(3)], [37, 12, 12]);
    assert.deepEqual(await facetValues(page, 'actor'), ['alice', 'bob', 'carol', 'mallory']);
    assert.equal(await facetCount(page, 'actor', 'alice'), 20);
    assert.equal(await facetCount(page, 'tenant_id', 'w2'), 16);
    await page.getByRole('region', { name: 'Top values' }).waitFor();
    await screenshot(page, 'insights');
  });

  it('a top value adds a filter, another click excludes one', async () => {
    await page.getByRole('button', { name: /^Filter: Actor is alice \(20 events\)$/ }).click();
    await waitForResults(page);
    await waitForInsights(page);
    assert.match(page.url(), /f=actor%3Dalice/);
    await page.locator('.chip', { hasText: 'alice' }).waitFor();
    assert.equal(await resultCount(page), 20);
    assert.equal(await timelineSum(page), 20);
    assert.deepEqual(await facetValues(page, 'actor'), ['alice']);
    await page.getByRole('button', { name: /^Exclude: Status failure$/ }).click();
    await waitForResults(page);
    await waitForInsights(page);
    assert.match(page.url(), /f=status%21%3Dfailure/);
    const statuses = await page.locator('#result-rows td.col-status').allTextContents();
    assert.ok(statuses.length === 16 && statuses.every((s) => s !== 'failure'), statuses.join());
    assert.equal(await timelineSum(page), 16);
    assert.deepEqual((await facetValues(page, 'status')).sort(), ['pending', 'success']);
    // back: the exclusion goes, the inclusion stays
    await page.goBack();
    await waitForResults(page);
    assert.equal(await resultCount(page), 20);
  });

  it('dragging across the timeline narrows the time range; the URL and the query follow', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&range=1h`);
    await waitForResults(page);
    await waitForInsights(page);
    const before = await page.locator('#timeline-summary').textContent();
    const box = await page.locator('#timeline-chart').boundingBox();
    // The events were received moments ago: the right end of the chart.
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2, { steps: 5 });
    await page.mouse.move(box.x + box.width - 1, box.y + box.height / 2, { steps: 5 });
    assert.equal(await page.locator('#timeline-chart .brush').isVisible(), true);
    await page.mouse.up();
    await waitForResults(page);
    await waitForInsights(page);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('range'), 'custom');
    const start = Date.parse(url.searchParams.get('start'));
    const end = Date.parse(url.searchParams.get('end'));
    assert.ok(end > start && end - start < 3600e3 / 2 && Date.now() - start < 3600e3 / 2, `${start} … ${end}`);
    await page.locator('.chip', { hasText: 'Time:' }).waitFor();
    assert.equal(await resultCount(page), 61);
    assert.equal(await timelineSum(page), 61);
    assert.notEqual(await page.locator('#timeline-summary').textContent(), before, 'finer bars');
    // a click on a bar zooms into it; the events are all in the last one with events
    const bars = page.locator('#timeline-chart .bar');
    const n = await bars.count();
    let last = n - 1;
    while (last > 0 && !(await bars.nth(last).locator('.seg').count())) last--;
    const inBar = Number((await page.locator(`#timeline-rows tr:nth-child(${last + 1}) td:last-child`).textContent()).replace(/,/g, ''));
    assert.ok(inBar > 0);
    await bars.nth(last).click();
    await waitForResults(page);
    await waitForInsights(page);
    const zoomed = new URL(page.url());
    assert.ok(Date.parse(zoomed.searchParams.get('end')) - Date.parse(zoomed.searchParams.get('start')) < end - start);
    assert.equal(await resultCount(page), inBar);
    assert.equal(await timelineSum(page), inBar);
    await page.locator('#timeline-zoom-out').click();
    await waitForResults(page);
    assert.ok(await resultCount(page) >= inBar);
  });

  it('the live tail updates the counts', async () => {
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&range=1h`);
    await waitForResults(page);
    await waitForInsights(page);
    await page.locator('#live-toggle').click();
    await page.locator('#live-status', { hasText: /^Live/ }).waitFor();
    await logEvents(server, server.adminKey, [1, 2].map((i) => ({ message: `${tag} live ${i}`, actor: 'dave', tenant_id: 'w1' })));
    await page.waitForFunction(() => document.querySelector('#timeline')?.dataset.total === '63', null, { timeout: 20000 });
    assert.equal(await timelineSum(page), 63);
    assert.ok((await facetValues(page, 'actor')).includes('dave'));
    await page.locator('#live-toggle').click();
  });

  it('a workspace-limited key sees no other workspace in the timeline or the top values', async () => {
    // Another tab: its own session storage, so its own key.
    const { page: p2 } = await newPage(browser.context);
    await p2.setViewportSize({ width: 1400, height: 900 });
    await signIn(p2, server, limitedKey);
    await p2.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&range=24h`);
    await waitForResults(p2);
    await waitForInsights(p2);
    const n = await resultCount(p2);
    assert.equal(n, 47, 'w1 holds 45 of the first 60 events and both live ones');
    assert.equal(await timelineSum(p2), n);
    assert.deepEqual(await facetValues(p2, 'tenant_id'), ['w1']);
    assert.ok(!(await facetValues(p2, 'actor')).includes('mallory'));
    assert.ok(!(await facetValues(p2, 'action')).includes('exfiltrate'));
    // asking for w2 explicitly finds nothing
    await p2.goto(`${server.url}/?q=${encodeURIComponent('tenant_id=w2')}&range=24h`);
    await waitForResults(p2);
    await waitForInsights(p2);
    assert.equal(await resultCount(p2), 0);
    assert.equal(await timelineSum(p2), 0);
    assert.deepEqual(await facetValues(p2, 'actor'), []);
    await p2.close();
    assert.deepEqual(problems.pageErrors, []);
    assert.deepEqual(problems.external, []);
  });
});

describe('an empty trail', () => {
  let server; let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  it('shows how to send a first event with curl in both dialects, and the commands work', async () => {
    const { page } = await newPage(browser.context);
    await signIn(page, server, server.adminKey);
    await waitForResults(page);
    await page.locator('.onboarding h2', { hasText: 'no events yet' }).waitFor({ timeout: 15000 });
    const h2o = await page.locator('#first-event-h2o').textContent();
    const pangea = await page.locator('#first-event-pangea').textContent();
    assert.ok(h2o.includes(`${server.url}/v1/events`) && pangea.includes(`${server.url}/pangea/v1/log`));
    await screenshot(page, 'empty-trail');
    for (const cmd of [h2o, pangea]) {
      await new Promise((res, rej) => execFile('bash', ['-c', cmd], { env: { ...process.env, TRAILKEEP_KEY: server.adminKey } },
        (err, stdout) => (err ? rej(err) : res(stdout))));
    }
    await page.getByRole('button', { name: 'Search again' }).click();
    await waitForResults(page);
    await waitForInsights(page);
    assert.equal(await resultCount(page), 2);
    assert.equal(await timelineSum(page), 2);
    await page.close();
  });
});
