// Shared helpers: start a trailkeep server on a free port with a fresh data dir, seed it
// through its APIs, create keys with the CLI, and drive Debian's Chromium.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..', '..');
export const BIN = process.env.TRAILKEEP_BIN || join(REPO, 'target', 'debug', 'trailkeep');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || join(tmpdir(), 'trailkeep-screens');

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function run(cmd, args, { timeout = 30000 } = {}) {
  return new Promise((res, rej) => {
    execFile(cmd, args, { timeout }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else res({ stdout, stderr });
    });
  });
}

/** Starts `trailkeep serve` on 127.0.0.1:0 (with extra `args`); resolves once it prints its URL. */
export async function startServer({ dataDir, args = [] } = {}) {
  const dir = dataDir ?? await mkdtemp(join(tmpdir(), 'trailkeep-ui-'));
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TRAILKEEP_LOG: process.env.TRAILKEEP_LOG ?? 'warn' },
  });
  let out = '';
  let err = '';
  const server = { child, dataDir: dir, url: null, adminKey: null, output: () => out + err };
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server did not start within 30 s\nstdout:\n${out}\nstderr:\n${err}`)), 30000);
    const check = () => {
      const key = /admin key: (\S+)/.exec(out);
      if (key) server.adminKey = key[1];
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out) || /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m && (server.adminKey || dataDir)) {
        server.url = m[1];
        clearTimeout(timer);
        res();
      }
    };
    child.stdout.on('data', (d) => { out += d; check(); });
    child.stderr.on('data', (d) => { err += d; check(); });
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`server exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`)); });
    child.on('error', (e) => { clearTimeout(timer); rej(new Error(`cannot start ${BIN}: ${e.message}`)); });
  });
  child.removeAllListeners('exit');
  return server;
}

export async function stopServer(server, { removeData = true } = {}) {
  if (!server) return;
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(t);
  }
  if (removeData) await rm(server.dataDir, { recursive: true, force: true });
}

/** `trailkeep keys create` (bound to `configs` if given); returns the secret (last stdout line). */
export async function createKey(server, { name, scopes = ['search'], workspaces = [], configs = [] }) {
  const args = ['keys', 'create', '--name', name];
  for (const s of scopes) args.push('--scope', s);
  for (const w of workspaces) args.push('--workspace', w);
  for (const c of configs) args.push('--config', c);
  args.push('--data-dir', server.dataDir);
  const { stdout } = await run(BIN, args);
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1];
}

export async function apiCall(server, key, method, path, body) {
  const res = await fetch(server.url + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

/** POST /pangea/v2/log in batches of ≤1000; returns the hashes. */
export async function logEvents(server, key, events) {
  const hashes = [];
  for (let i = 0; i < events.length; i += 1000) {
    const batch = events.slice(i, i + 1000).map((event) => ({ event }));
    const r = await apiCall(server, key, 'POST', '/pangea/v2/log', { events: batch });
    if (r.status !== 200 || r.json?.status !== 'Success') throw new Error(`log failed: HTTP ${r.status} ${r.text.slice(0, 500)}`);
    for (const x of r.json.result.results) hashes.push(x.hash);
  }
  return hashes;
}

/** H2O CreateEvent (POST /v1/events?eventId=…), body per h2o-api.md §5.1. */
export async function logH2oEvent(server, key, fields = {}) {
  const id = randomUUID();
  const body = {
    eventTime: new Date().toISOString(), eventSource: 'h2oai-test', action: 'actions/test/things/CREATE', readOnly: false,
    principal: 'users/a2b3b8a6-05c6-47d1-8ae1-774113404975', sourceIpAddress: '203.0.113.7', status: { code: 0, message: '' },
    resource: '//engine-manager/workspaces/w1/daiEngines/e1', requestParameters: { p: 'v' }, userAgent: 'ua/1.0',
    metadata: { k_1: 'v1' }, type: 'TYPE_API', ...fields,
  };
  const r = await apiCall(server, key, 'POST', `/v1/events?eventId=${id}`, body);
  if (r.status !== 200) throw new Error(`H2O create failed: HTTP ${r.status} ${r.text.slice(0, 500)}`);
  return { id, response: r.json };
}

/** Replaces text in stored envelopes (python3's sqlite3, busy timeout) while the server runs. */
export async function tamperEnvelope(server, { from, to, whereLike }) {
  const script = `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute('PRAGMA busy_timeout = 30000')
cur = db.execute("UPDATE events SET envelope = replace(envelope, ?, ?) WHERE envelope LIKE ?", (sys.argv[2], sys.argv[3], sys.argv[4]))
db.commit()
print(cur.rowcount)
`;
  const { stdout } = await run('python3', ['-c', script, join(server.dataDir, 'trailkeep.db'), from, to, whereLike]);
  return Number(stdout.trim());
}

export async function launchBrowser() {
  const profile = await mkdtemp(join(tmpdir(), 'trailkeep-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
    acceptDownloads: true,
  });
  if (process.env.UI_FROM_DISK) await serveUiFromDisk(context);
  const close = async () => {
    await context.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  };
  return { context, close };
}

const CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.html': 'text/html' };

/**
 * UI_FROM_DISK=1: answer the UI's static files from web/ on disk instead of the copy embedded
 * in the binary, to try UI changes against a server binary built before them.
 */
async function serveUiFromDisk(context) {
  await context.route(/^http:\/\/127\.0\.0\.1:\d+\/(?:\?.*)?$|^http:\/\/127\.0\.0\.1:\d+\/(?:js\/[\w.-]+\.js|app\.css|favicon\.svg|index\.html)$/, async (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = path === '/' ? 'index.html' : path.slice(1);
    const ext = file.slice(file.lastIndexOf('.'));
    await route.fulfill({
      status: 200,
      headers: { 'Content-Type': `${TYPES[ext]}; charset=utf-8`, 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' },
      body: await readFile(join(REPO, 'web', file)),
    });
  });
}

/** A page that records console errors, page errors and dialogs. */
export async function newPage(context) {
  const page = await context.newPage();
  const problems = { dialogs: [], pageErrors: [], consoleErrors: [], external: [] };
  page.on('dialog', (d) => { problems.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => problems.pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') problems.consoleErrors.push(m.text()); });
  page.on('request', (r) => { if (!/^(http:\/\/127\.0\.0\.1:|blob:|data:)/.test(r.url())) problems.external.push(r.url()); });
  return { page, problems };
}

export async function signIn(page, server, key) {
  await page.goto(server.url + '/');
  await page.locator('#signin-key').fill(key);
  await page.locator('#signin-submit').click();
  await page.locator('#app').waitFor({ state: 'visible' });
}

/** Waits until the results area shows a finished search. */
export async function waitForResults(page) {
  await page.waitForFunction(() => {
    const t = document.querySelector('#results-table');
    const msg = document.querySelector('#results-message');
    const loading = msg && !msg.hidden && msg.classList.contains('loading');
    return t && t.getAttribute('aria-busy') === 'false' && !loading;
  }, null, { timeout: 30000 });
}

/** Waits until the timeline and top values of the current search are shown. */
export async function waitForInsights(page) {
  await page.waitForFunction(() => {
    const t = document.querySelector('#timeline');
    return t && t.getAttribute('aria-busy') === 'false' && document.querySelector('#facets')?.getAttribute('aria-busy') === 'false';
  }, null, { timeout: 30000 });
}

/** The event count of the results header ("12 events" → 12). */
export async function resultCount(page) {
  const text = await page.locator('#result-count').textContent();
  const m = /^([\d,]+) events?$/.exec(text.trim());
  if (!m) throw new Error(`no count in ${JSON.stringify(text)}`);
  return Number(m[1].replace(/,/g, ''));
}

/** Sum of the timeline's table (what a screen reader reads). */
export async function timelineSum(page) {
  return page.evaluate(() => [...document.querySelectorAll('#timeline-rows tr')]
    .reduce((n, tr) => n + Number(tr.lastElementChild.textContent.replace(/,/g, '')), 0));
}

export async function screenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  console.log(`screenshot: ${path}`);
  return path;
}

export function uid() {
  return randomUUID().slice(0, 8);
}

const AXE = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe-core on the page; fails on any serious or critical violation. */
export async function axe(page, label) {
  // page.evaluate runs through the DevTools protocol, so the page's CSP does not block it.
  const result = await page.evaluate(`${AXE}; axe.run(document, { resultTypes: ['violations'] })`);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const text = bad.map((v) => `${label}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
  assert.deepEqual(text, []);
}
