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
