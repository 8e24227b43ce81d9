// Static checks of web/: no HTML-parsing sinks, no inline scripts or styles (CSP), no
// external requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, extname } from 'node:path';
import { REPO } from '../lib/harness.js';

const WEB = join(REPO, 'web');

async function files(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...await files(p));
    else out.push(p);
  }
  return out;
}

test('web/ never uses innerHTML, outerHTML, insertAdjacentHTML or document.write', async () => {
  const bad = [];
  for (const f of await files(WEB)) {
    if (!['.js', '.mjs', '.html', '.css', '.svg'].includes(extname(f))) continue;
    const text = await readFile(f, 'utf8');
    text.split('\n').forEach((line, i) => {
      if (/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new Function\s*\(/.test(line)) bad.push(`${f}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(bad, []);
});

test('HTML has no inline scripts, inline styles or event-handler attributes (CSP)', async () => {
  const bad = [];
  for (const f of (await files(WEB)).filter((x) => x.endsWith('.html'))) {
    const text = await readFile(f, 'utf8');
    for (const m of text.matchAll(/<script\b([^>]*)>/gi)) if (!/\bsrc=/.test(m[1])) bad.push(`${f}: inline <script>`);
    if (/<style\b/i.test(text)) bad.push(`${f}: <style> block`);
    if (/\sstyle\s*=/i.test(text)) bad.push(`${f}: style attribute`);
    if (/\son[a-z]+\s*=/i.test(text)) bad.push(`${f}: event-handler attribute`);
    if (/javascript:/i.test(text)) bad.push(`${f}: javascript: URL`);
  }
  assert.deepEqual(bad, []);
});

test('web/ loads nothing from other origins', async () => {
  const bad = [];
  for (const f of await files(WEB)) {
    if (!['.js', '.mjs', '.html', '.css'].includes(extname(f))) continue;
    const text = await readFile(f, 'utf8');
    for (const m of text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s'"]*/gi)) {
      if (m[0].startsWith('//')) continue; // comments
      bad.push(`${f}: ${m[0]}`);
    }
    if (/@import\s+url\(\s*['"]?https?:/i.test(text)) bad.push(`${f}: remote @import`);
  }
  assert.deepEqual(bad, []);
});
