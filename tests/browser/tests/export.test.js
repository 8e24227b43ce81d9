// Export of the current search downloads a file whose rows match the search.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { startServer, stopServer, logEvents, launchBrowser, newPage, signIn, waitForResults, uid } from '../lib/harness.js';

function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') q = false; else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell); rows.push(row); row = []; cell = '';
    } else cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

function maybeGunzip(buf) {
  return buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
}

function messagesFromJson(text) {
  const t = text.trim();
  let items;
  if (t.startsWith('[')) items = JSON.parse(t);
  else if (t.startsWith('{') && !t.includes('\n')) {
    const o = JSON.parse(t);
    items = o.events ?? o.result?.events ?? [o];
  } else items = t.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return items.map((x) => x.envelope?.event?.message ?? x.event?.message ?? x.message);
}

describe('export', () => {
  let server; let browser; let page;
  const tag = `exp${uid()}`;
  let expected;

  before(async () => {
    server = await startServer();
    const events = [];
    for (let i = 0; i < 30; i++) events.push({ message: `${tag} row ${i}, "quoted"`, actor: i % 2 ? 'alice' : 'bob', action: 'read' });
    events.push({ message: `other${uid()} not exported`, actor: 'alice' });
    await logEvents(server, server.adminKey, events);
    expected = events.filter((e) => e.message.startsWith(tag) && e.actor === 'alice').map((e) => e.message).sort();
    browser = await launchBrowser();
    ({ page } = await newPage(browser.context));
    await signIn(page, server, server.adminKey);
    await page.goto(`${server.url}/?q=${encodeURIComponent(`message:"${tag}"`)}&f=actor%3Dalice&size=20`);
    await waitForResults(page);
    assert.match(await page.locator('#result-count').textContent(), /^15 events$/);
  });

  after(async () => {
    await browser?.close();
    await stopServer(server);
  });

  async function download(format) {
    await page.locator('#export-menu summary').click();
    const [dl] = await Promise.all([
      page.waitForEvent('download', { timeout: 20000 }),
      page.locator(`#export-menu button[data-format="${format}"]`).click(),
    ]);
    const path = await dl.path();
    return { name: dl.suggestedFilename(), data: maybeGunzip(await readFile(path)) };
  }

  it('CSV rows match the search', async () => {
    const { name, data } = await download('csv');
    assert.match(name, /csv/);
    const rows = parseCsv(data.toString('utf8')).filter((r) => r.length > 1);
    const header = rows[0];
    const col = header.indexOf('message');
    assert.ok(col >= 0, `CSV header has a message column: ${header}`);
    assert.deepEqual(rows.slice(1).map((r) => r[col]).sort(), expected);
  });

  it('JSON rows match the search', async () => {
    const { data } = await download('json');
    assert.deepEqual(messagesFromJson(data.toString('utf8')).sort(), expected);
  });
});
