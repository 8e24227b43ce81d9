// JSON parsing that keeps number source text, and Python-compatible canonical JSON.
//
// The server hashes an envelope as Python's
//   json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
// (spec pangea-api.md §8.1). JSON.parse loses the difference between `1` and `1.0` and the
// digits of big integers, so API responses are parsed here: numbers that are not safe
// integers become JsonNumber objects that remember their source text.

export class JsonNumber {
  constructor(source) { this.source = source; }
  valueOf() { return Number(this.source); }
  toString() { return this.source; }
  toJSON() { return Number(this.source); }
  get isInteger() { return /^-?\d+$/.test(this.source); }
}

export class JsonError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Parses JSON text. Rejects duplicate keys and trailing data. */
export function parseJson(text) {
  let i = 0;
  const n = text.length;
  const fail = (msg) => { throw new JsonError(`${msg} at offset ${i}`); };
  const skip = () => { while (i < n && WS.has(text.charCodeAt(i))) i++; };

  function parseString() {
    // text[i] === '"'
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) { out += text.slice(start, i); i++; return out; }
      if (c < 0x20) fail('control character in string');
      if (c !== 0x5c) { i++; continue; }
      out += text.slice(start, i);
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        default: fail('bad escape');
      }
      start = i;
    }
  }

  const NUM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  function parseNumber() {
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) fail('bad number');
    i += m[0].length;
    const src = m[0];
    if (/^-?\d+$/.test(src)) {
      const v = Number(src);
      if (Number.isSafeInteger(v) && src !== '-0') return v;
    }
    return new JsonNumber(src);
  }

  function parseValue(depth) {
    if (depth > 512) fail('nesting too deep');
    skip();
    if (i >= n) fail('unexpected end');
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = {};
      const seen = new Set();
      skip();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('expected key');
        const k = parseString();
        if (seen.has(k)) fail(`duplicate key ${JSON.stringify(k)}`);
        seen.add(k);
        skip();
        if (text[i] !== ':') fail('expected :');
        i++;
        const v = parseValue(depth + 1);
        Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
        skip();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const arr = [];
      skip();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(parseValue(depth + 1));
        skip();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail('expected , or ]');
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    if (text.startsWith('null', i)) { i += 4; return null; }
    return parseNumber();
  }

  const v = parseValue(0);
  skip();
  if (i !== n) fail('trailing data');
  return v;
}

// ---- canonical JSON ----

function escapeString(s) {
  let out = '"';
  let start = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    let rep = null;
    if (c === 0x22) rep = '\\"';
    else if (c === 0x5c) rep = '\\\\';
    else if (c < 0x20) {
      switch (c) {
        case 0x08: rep = '\\b'; break;
        case 0x0c: rep = '\\f'; break;
        case 0x0a: rep = '\\n'; break;
        case 0x0d: rep = '\\r'; break;
        case 0x09: rep = '\\t'; break;
        default: rep = '\\u' + c.toString(16).padStart(4, '0');
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const hi = c <= 0xdbff;
      const next = s.charCodeAt(k + 1);
      if (hi && next >= 0xdc00 && next <= 0xdfff) { k++; continue; }
      throw new JsonError('string contains a lone surrogate (not encodable as UTF-8)');
    }
    if (rep !== null) {
      out += s.slice(start, k) + rep;
      start = k + 1;
    }
  }
  return out + s.slice(start) + '"';
}

/** Compares strings by Unicode code point, as Python sorts str. */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a.charCodeAt(k);
    const y = b.charCodeAt(k);
    if (x === y) continue;
    // Surrogates (astral code points) sort after every other BMP code unit >= 0xE000.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1; // an astral code point is above every BMP one
    return x - y;
  }
  return a.length - b.length;
}

/** Python repr() of a finite double. */
export function pythonFloatRepr(x) {
  if (!Number.isFinite(x)) throw new JsonError('NaN or Infinity is not allowed');
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expStr] = Math.abs(x).toExponential().split('e');
  const exp = Number(expStr);
  const digits = mant.replace('.', '');
  if (exp >= -4 && exp < 16) {
    let s;
    if (exp >= 0) {
      s = digits.length > exp + 1
        ? digits.slice(0, exp + 1) + '.' + digits.slice(exp + 1)
        : digits + '0'.repeat(exp + 1 - digits.length) + '.0';
    } else {
      s = '0.' + '0'.repeat(-exp - 1) + digits;
    }
    return sign + s;
  }
  const m = digits.length > 1 ? digits[0] + '.' + digits.slice(1) : digits;
  const e = (exp < 0 ? '-' : '+') + String(Math.abs(exp)).padStart(2, '0');
  return sign + m + 'e' + e;
}

function canonicalNumber(v) {
  if (v instanceof JsonNumber) {
    if (v.isInteger) return BigInt(v.source).toString();
    return pythonFloatRepr(Number(v.source));
  }
  if (Number.isInteger(v)) return Object.is(v, -0) ? '0' : String(v);
  return pythonFloatRepr(v);
}

/** Canonical JSON text of a value parsed by parseJson (Python json.dumps rules, §8.1). */
export function canonicalJson(v) {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'string') return escapeString(v);
  if (typeof v === 'number' || v instanceof JsonNumber) return canonicalNumber(v);
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort(compareCodePoints);
    return '{' + keys.map((k) => escapeString(k) + ':' + canonicalJson(v[k])).join(',') + '}';
  }
  throw new JsonError(`cannot serialise ${typeof v}`);
}

/** Pretty JSON for display (keys sorted, numbers as received). */
export function prettyJson(v, indent = '') {
  if (v === null || typeof v !== 'object' || v instanceof JsonNumber) {
    return v instanceof JsonNumber ? v.source : JSON.stringify(v);
  }
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[\n' + v.map((x) => inner + prettyJson(x, inner)).join(',\n') + '\n' + indent + ']';
  }
  const keys = Object.keys(v).sort(compareCodePoints);
  if (keys.length === 0) return '{}';
  return '{\n' + keys.map((k) => inner + JSON.stringify(k) + ': ' + prettyJson(v[k], inner)).join(',\n') + '\n' + indent + '}';
}
