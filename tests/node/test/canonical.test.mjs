// RFC 8785 canonical JSON (json-canon, what Pangea's Node SDK hashes envelopes and signs events
// with) against Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
// (what Pangea's service, the Python SDK and trailkeep hash): byte for byte on events with
// non-ASCII text, escapes and integers. The inputs where the two differ are listed in
// DIFFERENT and asserted to differ, so the documented list stays true (README, "Clients in other
// languages").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import serialize from 'json-canon';

/** Envelopes as JSON text (the integers must reach Python unrounded). */
const SAME = [
  // non-ASCII text
  '{"event":{"message":"café ☃ 日本語 Ünïcødé","actor":"ålice"},"received_at":"2024-05-01T00:00:00.000000Z"}',
  '{"event":{"message":"emoji 😀 and 🏳️‍🌈, combining e\u0301"},"received_at":"2024-05-01T00:00:00.000001Z"}',
  // escapes, control characters, characters other encoders escape
  '{"event":{"message":"q\\"uote back\\\\slash tab\\t nl\\n cr\\r bs\\b ff\\f"},"received_at":"2024-05-01T00:00:00.000002Z"}',
  '{"event":{"message":"nul\\u0000 us\\u001f vt\\u000b del\\u007f c1\\u0085 ls\\u2028 ps\\u2029"},"received_at":"2024-05-01T00:00:00.000003Z"}',
  '{"event":{"message":"</script> & <b> / \' `"},"received_at":"2024-05-01T00:00:00.000004Z"}',
  '{"event":{"message":"\\ud83d\\ude00 escaped pair, \\u00e9 escaped latin"},"received_at":"2024-05-01T00:00:00.000005Z"}',
  // a nested value the SDKs send as canonical JSON text
  '{"event":{"message":"m","new":"{\\"a\\":[1,{\\"y\\":2,\\"z\\":1}],\\"b\\":\\"é\\"}"},"received_at":"2024-05-01T00:00:00.000006Z"}',
  // integers and booleans of custom fields
  '{"event":{"message":"n","n":0,"m":-1,"k":42,"ok":true,"no":false},"received_at":"2024-05-01T00:00:00.000007Z"}',
  '{"event":{"message":"n","big":9007199254740991,"neg":-9007199254740991,"i32":2147483648},"received_at":"2024-05-01T00:00:00.000008Z"}',
  '{"event":{"message":"n","z":-0},"received_at":"2024-05-01T00:00:00.000009Z"}',
  // client signatures: public_key text and signature
  '{"event":{"message":"s"},"public_key":"{\\"algorithm\\":\\"ED25519\\",\\"key\\":\\"-----BEGIN PUBLIC KEY-----\\\\nMCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=\\\\n-----END PUBLIC KEY-----\\\\n\\"}","received_at":"2024-05-01T00:00:00.000010Z","signature":"IYDK5DI6n09gliJsXE8eGuHkERWcRoBKm5WEAW5hNdpBojHSq/gro9ejgviyFlsmurVXZprebf1k7V00QjXBCw=="}',
  // keys: ASCII field ids sort the same either way
  '{"event":{"zeta":"1","Zeta":"2","a_b":"3","a1":"4","message":"k"},"received_at":"2024-05-01T00:00:00.000011Z"}',
  // object keys of non-ASCII characters below U+10000 (e.g. H2O metadata keys)
  '{"event":{"message":"k","metadata":{"é":"1","z":"2","日":"3","\\uffff":"4"}},"received_at":"2024-05-01T00:00:00.000012Z"}',
];

/** Where RFC 8785 and Python's canonical JSON differ: [why, envelope]. */
const DIFFERENT = [
  // JavaScript numbers are IEEE doubles: integers beyond ±(2^53 − 1) lose digits when parsed.
  ['integer above 2^53 - 1', '{"event":{"message":"n","n":9007199254740993},"received_at":"2024-05-01T00:00:00.000020Z"}'],
  ['largest 64-bit integer', '{"event":{"message":"n","n":9223372036854775807},"received_at":"2024-05-01T00:00:00.000021Z"}'],
  ['integer below -(2^53 - 1)', '{"event":{"message":"n","n":-9007199254740993},"received_at":"2024-05-01T00:00:00.000022Z"}'],
  // RFC 8785 sorts keys by UTF-16 code units, Python by code points: a key with a character above
  // U+FFFF (a surrogate pair, D800–DBFF first) sorts before one with a character from U+E000.
  ['keys above U+FFFF and from U+E000', '{"event":{"message":"k","metadata":{"\\uffff":"1","😀":"2"}},"received_at":"2024-05-01T00:00:00.000023Z"}'],
];

/** Python's canonical JSON of each input (one JSON text per line). */
function pythonCanonical(texts) {
  const script = [
    'import json, sys',
    'for line in sys.stdin.read().splitlines():',
    '    v = json.loads(line)',
    '    sys.stdout.write(json.dumps(v, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True) + "\\n")',
  ].join('\n');
  const out = execFileSync(process.env.PYTHON || 'python3', ['-c', script], {
    input: texts.join('\n') + '\n',
    encoding: 'utf8',
  });
  return out.split('\n').slice(0, texts.length);
}

test('RFC 8785 and Python canonical JSON agree on text, escapes, integers within 2^53, booleans', () => {
  const py = pythonCanonical(SAME);
  SAME.forEach((text, i) => {
    assert.equal(serialize(JSON.parse(text)), py[i], `input ${i}: ${text}`);
  });
});

test('the documented differences are real', () => {
  const py = pythonCanonical(DIFFERENT.map(([, t]) => t));
  DIFFERENT.forEach(([why, text], i) => {
    assert.notEqual(serialize(JSON.parse(text)), py[i], `${why} no longer differs: update the README`);
  });
});
