// Line diff (LCS) for the old → new view of an event.

import { parseJson, prettyJson } from './json.js';

/** A value from `old`/`new` as display lines: JSON objects pretty-printed with sorted keys. */
export function toLines(v) {
  if (v === undefined || v === null) return [];
  let text = typeof v === 'string' ? v : prettyJson(v);
  if (typeof v === 'string') {
    const t = v.trim();
    if (t.startsWith('{') || t.startsWith('[')) {
      try { text = prettyJson(parseJson(t)); } catch { /* not JSON: keep the text */ }
    }
  }
  return text.split('\n');
}

const MAX_CELLS = 4_000_000;

/** Returns [{ type: 'same'|'add'|'del', text }]. */
export function diffLines(a, b) {
  // Trim the common prefix and suffix first: typical changes are small.
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const out = a.slice(0, pre).map((text) => ({ type: 'same', text }));
  if (A.length * B.length > MAX_CELLS) {
    for (const text of A) out.push({ type: 'del', text });
    for (const text of B) out.push({ type: 'add', text });
  } else {
    const n = A.length;
    const m = B.length;
    const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (A[i] === B[j]) { out.push({ type: 'same', text: A[i] }); i++; j++; }
      else if (L[i + 1][j] >= L[i][j + 1]) out.push({ type: 'del', text: A[i++] });
      else out.push({ type: 'add', text: B[j++] });
    }
    while (i < n) out.push({ type: 'del', text: A[i++] });
    while (j < m) out.push({ type: 'add', text: B[j++] });
  }
  for (const text of a.slice(a.length - suf)) out.push({ type: 'same', text });
  return out;
}
