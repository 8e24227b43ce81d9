// Live tail: GET /api/v1/tail?query=… read with fetch() (EventSource cannot send the
// Authorization header) and parsed as text/event-stream.

import { fetchRaw, ApiError, configParams } from './api.js';
import { parseJson } from './json.js';

/** Splits an SSE byte stream into events; calls onEvent({ event, data, id }). */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.data = [];
    this.event = '';
    this.id = '';
  }
  push(text) {
    this.buf += text;
    let nl;
    while ((nl = this.buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buf.slice(0, nl);
      const sep = this.buf[nl] === '\r' && this.buf[nl + 1] === '\n' ? 2 : 1;
      if (this.buf[nl] === '\r' && nl + 1 === this.buf.length) break; // wait: may be \r\n split
      this.buf = this.buf.slice(nl + sep);
      this.line(line);
    }
  }
  line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}

/**
 * Starts a tail. handlers: onEvent(searchEvent), onStatus(text, state), onError(err).
 * Reconnects with back-off until stop() is called. Returns { stop }.
 */
export function startTail(query, handlers) {
  let stopped = false;
  let controller = null;
  let attempt = 0;

  async function run() {
    while (!stopped) {
      controller = new AbortController();
      handlers.onStatus(attempt ? 'Reconnecting…' : 'Connecting…', 'connecting');
      try {
        const res = await fetchRaw(`/api/v1/tail?${new URLSearchParams({ query, ...configParams() })}`, { signal: controller.signal, accept: 'text/event-stream' });
        if (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 400) {
          let msg = `HTTP ${res.status}`;
          try { const body = await res.json(); msg = body.detail || body.title || body.summary || msg; } catch { /* ignore */ }
          throw new ApiError(res.status === 404 ? 'Live tail is not available on this server (GET /api/v1/tail → 404).' : `Live tail refused: ${msg}`, { status: res.status });
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        attempt = 0;
        handlers.onStatus('Live', 'live');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser(({ event, data }) => {
          if (event !== 'message') return;
          try {
            handlers.onEvent(parseJson(data));
          } catch {
            handlers.onStatus('Skipped an unreadable live event', 'live');
          }
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
        if (stopped) return;
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        if (e instanceof ApiError && e.status) {
          handlers.onError(e);
          return;
        }
      }
      attempt++;
      const wait = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5));
      handlers.onStatus(`Connection lost; retrying in ${Math.round(wait / 1000)} s`, 'connecting');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  run();
  return {
    stop() {
      stopped = true;
      if (controller) controller.abort();
    },
  };
}
