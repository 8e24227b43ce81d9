// The timeline above the results: matching events per time bucket, stacked by outcome, from
// GET /api/v1/aggregate. Dragging across it (or clicking a bar) narrows the time range. For
// screen readers the chart is an image with a summary as its name, and the counts are a table.

import { h, clear, setText, fmtInt, fmtExact } from './dom.js';

const OUTCOMES = [['success', 'success'], ['other', 'no status'], ['failure', 'failure']];

/** "30-minute", "1-hour", "7-day" … for a bucket size in seconds. */
export function bucketLabel(sec) {
  if (sec % 86400 === 0) return `${sec / 86400}-day`;
  if (sec % 3600 === 0) return `${sec / 3600}-hour`;
  if (sec % 60 === 0) return `${sec / 60}-minute`;
  return `${sec}-second`;
}

/** An ISO time as shown on the axis and in the table (UTC, as precise as the buckets need). */
function fmtBucketTime(ms, bucketSec) {
  const iso = new Date(ms).toISOString();
  if (bucketSec >= 86400) return iso.slice(0, 10);
  if (bucketSec >= 60) return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

function total(b) {
  return b.success + b.failure + b.other;
}

export class Timeline {
  /** els: { section, chart, axis, rows, summary, message, zoomOut }; onRange(startIso, endIso). */
  constructor(els, onRange) {
    this.els = els;
    this.onRange = onRange;
    this.data = null;
    this.drag = null;
    const c = els.chart;
    c.addEventListener('pointerdown', (ev) => this.down(ev));
    c.addEventListener('pointermove', (ev) => this.move(ev));
    c.addEventListener('pointerup', (ev) => this.up(ev));
    c.addEventListener('pointercancel', () => this.cancel());
    c.addEventListener('lostpointercapture', () => this.cancel());
    // Axis labels follow the width.
    let width = 0;
    new ResizeObserver(() => {
      const w = Math.round(c.clientWidth);
      if (w !== width && this.data && !this.drag) this.render(this.data.agg);
      width = w;
    }).observe(c);
  }

  loading() {
    this.els.section.setAttribute('aria-busy', 'true');
    this.els.chart.classList.add('loading');
    setText(this.els.summary, 'Counting…');
  }

  error(text, retry) {
    this.data = null;
    this.els.section.setAttribute('aria-busy', 'false');
    this.els.chart.classList.remove('loading');
    clear(this.els.chart);
    clear(this.els.axis);
    clear(this.els.rows);
    this.els.chart.setAttribute('aria-label', 'Events over time: not available');
    setText(this.els.summary, '');
    const m = this.els.message;
    clear(m);
    m.className = 'timeline-message error';
    m.append(`The timeline could not be loaded: ${text} `, h('button', { type: 'button', className: 'mini', onClick: retry }, 'Retry'));
    m.hidden = false;
  }

  /** Shows an aggregation (the API's answer). */
  render(agg) {
    const { chart, axis, rows, summary, message, section } = this.els;
    const buckets = Array.isArray(agg.buckets) ? agg.buckets : [];
    const size = agg.bucket_seconds * 1000;
    const first = buckets.length ? Date.parse(buckets[0].start) : Date.parse(agg.start);
    this.data = { agg, buckets, size, first, n: buckets.length };
    section.setAttribute('aria-busy', 'false');
    chart.classList.remove('loading');
    chart.style.setProperty('--n', String(Math.max(1, buckets.length)));
    const max = Math.max(1, ...buckets.map(total));
    const countedFrom = agg.counted_from ? Date.parse(agg.counted_from) : null;
    const frag = document.createDocumentFragment();
    let failures = 0;
    buckets.forEach((b, i) => {
      const t = first + i * size;
      const n = total(b);
      failures += b.failure;
      const bar = h('div', { className: 'bar' });
      if (countedFrom !== null && t + size <= countedFrom) bar.classList.add('uncounted');
      for (const [k] of OUTCOMES) {
        if (!b[k]) continue;
        const seg = h('div', { className: `seg ${k}` });
        seg.style.height = `${(100 * b[k]) / max}%`;
        bar.append(seg);
      }
      bar.title = `${fmtBucketTime(t, agg.bucket_seconds)} UTC: ${fmtInt(n)} ${n === 1 ? 'event' : 'events'}`
        + (n ? ` (${fmtInt(b.success)} success, ${fmtInt(b.failure)} failure, ${fmtInt(b.other)} no status)` : '');
      frag.append(bar);
    });
    chart.replaceChildren(frag, h('div', { className: 'brush', hidden: true }));

    clear(axis);
    // As many labels as fit (about 150 px each).
    const ticks = Math.min(buckets.length, Math.max(2, Math.min(5, Math.floor((chart.clientWidth || 600) / 150))));
    for (let k = 0; k < ticks; k++) {
      const i = ticks === 1 ? 0 : Math.round((k * (buckets.length - 1)) / (ticks - 1));
      const span = h('span', null, fmtBucketTime(first + i * size, agg.bucket_seconds) + (k === 0 ? ' UTC' : ''));
      span.style.left = `${((i + 0.5) * 100) / buckets.length}%`;
      if (k === 0) span.classList.add('first');
      if (k === ticks - 1 && ticks > 1) span.classList.add('last');
      axis.append(span);
    }

    const rowsFrag = document.createDocumentFragment();
    buckets.forEach((b, i) => {
      rowsFrag.append(h('tr', null,
        h('th', { attrs: { scope: 'row' } }, fmtBucketTime(first + i * size, agg.bucket_seconds)),
        h('td', null, fmtInt(b.success)), h('td', null, fmtInt(b.failure)), h('td', null, fmtInt(b.other)),
        h('td', null, fmtInt(total(b)))));
    });
    rows.replaceChildren(rowsFrag);
    section.dataset.total = String(agg.total);

    const label = bucketLabel(agg.bucket_seconds);
    const from = fmtBucketTime(Date.parse(agg.start), agg.bucket_seconds);
    const to = fmtBucketTime(Date.parse(agg.end), agg.bucket_seconds);
    chart.setAttribute('aria-label', `Events over time: ${fmtInt(agg.total)} ${agg.total === 1 ? 'event' : 'events'} from ${from} to ${to} UTC `
      + `in ${label} periods, ${fmtInt(failures)} ${failures === 1 ? 'failure' : 'failures'}. The table that follows lists the counts.`);
    setText(summary, `${fmtInt(agg.total)} ${agg.total === 1 ? 'event' : 'events'} · ${label} bars`
      + (buckets.length > 1 ? ' · drag across the bars to zoom in' : ''));
    if (agg.complete === false && agg.counted_from) {
      clear(message);
      message.className = 'timeline-message warn';
      message.append(`Counted the events received since ${fmtExact(agg.counted_from)} only (the greyed part is not counted): `
        + 'the server reads a limited number of events per query. Narrow the time range for complete counts.');
      message.hidden = false;
    } else {
      message.hidden = true;
    }
  }

  // ---- brushing ----

  xToBucket(clientX) {
    const r = this.els.chart.getBoundingClientRect();
    const x = Math.min(Math.max(clientX - r.left, 0), r.width - 0.01);
    return { x, i: Math.floor((x / r.width) * this.data.n), width: r.width };
  }

  down(ev) {
    if (!this.data?.n || ev.button !== 0) return;
    ev.preventDefault();
    this.els.chart.setPointerCapture(ev.pointerId);
    this.drag = { start: this.xToBucket(ev.clientX), moved: false };
  }

  move(ev) {
    if (!this.drag) return;
    const cur = this.xToBucket(ev.clientX);
    if (Math.abs(cur.x - this.drag.start.x) > 3) this.drag.moved = true;
    if (!this.drag.moved) return;
    const brush = this.els.chart.querySelector('.brush');
    const [a, b] = [Math.min(this.drag.start.i, cur.i), Math.max(this.drag.start.i, cur.i)];
    brush.style.left = `${(a * 100) / this.data.n}%`;
    brush.style.width = `${((b - a + 1) * 100) / this.data.n}%`;
    brush.hidden = false;
  }

  up(ev) {
    if (!this.drag) return;
    const cur = this.xToBucket(ev.clientX);
    const [a, b] = [Math.min(this.drag.start.i, cur.i), Math.max(this.drag.start.i, cur.i)];
    this.drag = null;
    const { first, size, agg } = this.data;
    // Whole buckets, within the window the timeline covers.
    const start = Math.max(first + a * size, Date.parse(agg.start));
    const end = Math.min(first + (b + 1) * size - 1, Date.parse(agg.end));
    if (end > start) this.onRange(new Date(start).toISOString(), new Date(end).toISOString());
    else this.cancel();
  }

  cancel() {
    this.drag = null;
    const brush = this.els.chart.querySelector('.brush');
    if (brush) brush.hidden = true;
  }
}
