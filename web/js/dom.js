// Tiny DOM builder. Text is only ever inserted as text nodes / textContent, never parsed
// as HTML: event data from the server is untrusted.

import { JsonNumber } from './json.js';

const PROP_KEYS = new Set(['className', 'id', 'type', 'value', 'checked', 'disabled', 'hidden', 'tabIndex', 'htmlFor', 'name', 'title', 'open']);

/**
 * h('button', { className: 'x', onClick: fn, attrs: { 'aria-label': '…' } }, 'text', child)
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'attrs') {
        for (const [a, av] of Object.entries(v)) if (av !== undefined && av !== null && av !== false) el.setAttribute(a, av === true ? '' : String(av));
      } else if (k === 'dataset') {
        Object.assign(el.dataset, v);
      } else if (k === 'text') {
        el.textContent = String(v);
      } else if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2).toLowerCase(), v);
      } else if (PROP_KEYS.has(k)) {
        el[k] = v;
      } else {
        throw new Error(`h(): unknown prop ${k}`);
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

export function $(sel, root = document) {
  const el = root.querySelector(sel);
  if (!el) throw new Error(`missing element ${sel}`);
  return el;
}

export function setText(el, text) {
  el.textContent = text === null || text === undefined ? '' : String(text);
}

export function clear(el) {
  el.replaceChildren();
}

const nf = new Intl.NumberFormat('en-US');
export function fmtInt(n) {
  return nf.format(n);
}

/** "2026-12-01T21:27:19.441314Z" → "2026-12-01 21:27:19.441" (kept in UTC). */
export function fmtTime(s) {
  if (typeof s !== 'string') return '';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,3})?/.exec(s);
  return m ? `${m[1]} ${m[2]}${m[3] || ''}` : s;
}

/** Any JSON-ish value as display text. */
export function displayValue(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (v instanceof JsonNumber) return v.source;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function announce(text) {
  const el = document.getElementById('announcer');
  if (el) {
    el.textContent = '';
    // A separate tick so that screen readers announce repeated messages.
    setTimeout(() => { el.textContent = text; }, 30);
  }
}

/** "2026-12-01T21:27:19.441314Z" → "2026-12-01 21:27:19.441314 UTC" (the exact time, for hover). */
export function fmtExact(s) {
  if (typeof s !== 'string') return '';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z$/.exec(s);
  return m ? `${m[1]} ${m[2]} UTC` : s;
}

/** A time relative to now: "12 s ago", "5 min ago", "3 h ago", "4 days ago", else the date. */
export function fmtRelative(s, now = Date.now()) {
  const t = typeof s === 'string' ? Date.parse(s) : NaN;
  if (Number.isNaN(t)) return typeof s === 'string' ? s : '';
  const sec = Math.round((now - t) / 1000);
  if (sec < -5) return `in ${fmtDuration(-sec)}`;
  if (sec < 5) return 'just now';
  if (sec < 30 * 86400) return `${fmtDuration(sec)} ago`;
  return s.slice(0, 10);
}

/** A duration in seconds, coarsely: "12 s", "5 min", "3 h", "4 days". */
export function fmtDuration(sec) {
  if (sec < 60) return `${Math.round(sec)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h`;
  const d = Math.floor(sec / 86400);
  return `${d} ${d === 1 ? 'day' : 'days'}`;
}

/** <time> showing the relative time, the exact one on hover; refreshed by refreshRelativeTimes(). */
export function relTime(iso) {
  const t = document.createElement('time');
  t.className = 'rel';
  if (typeof iso === 'string') {
    t.dateTime = iso;
    t.title = fmtExact(iso);
  }
  t.textContent = fmtRelative(iso);
  return t;
}

export function refreshRelativeTimes(root = document) {
  const now = Date.now();
  for (const t of root.querySelectorAll('time.rel')) {
    const text = fmtRelative(t.dateTime, now);
    if (t.textContent !== text) t.textContent = text;
  }
}
