// The UI's pure modules, run in node (no server, no browser): canonical JSON and hashes
// against the spec's vectors, proof folding, the verifier against malicious inputs, the
// SSE parser, the query builder and the diff; audit configs: schema views, the config picked,
// typed filters in the URL and the query, server signatures.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { parseJson, canonicalJson, pythonFloatRepr } from '../../../web/js/json.js';
import { sha256Sync } from '../../../web/js/sha256.js';
import { foldProof, parseMembershipProof, verifySearchEvent, envelopeHash, verifyEventSignature } from '../../../web/js/verify.js';
import { viewFromSchema, pickConfig, schemaFields } from '../../../web/js/schema.js';
import { SseParser } from '../../../web/js/tail.js';
import { buildQuery, DEFAULTS, useFields, stateFromUrl, urlFromState } from '../../../web/js/state.js';
import { diffLines } from '../../../web/js/diff.js';

const sha = (s) => createHash('sha256').update(s).digest('hex');
const H = (a, b) => createHash('sha256').update(Buffer.concat([Buffer.from(a, 'hex'), Buffer.from(b, 'hex')])).digest('hex');

describe('canonical JSON (spec §8, §15.1)', () => {
  const vectors = [
    ['minimal', '{"event":{"message":"test"}}', '9c9c3b5a627cce035d517c14c10779656e900532bf6e76a5d2c69148e45fdb8d'],
    ['A', String.raw`{"event":{"action":"login","actor":"alice","message":"hello world","new":"{\"a\":1,\"b\":2}","status":"success","timestamp":"2024-05-01T12:00:00.123456Z"},"public_key":"{\"algorithm\":\"ED25519\",\"key\":\"-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=\\n-----END PUBLIC KEY-----\\n\"}","received_at":"2024-05-01T12:00:01.000001Z","signature":"IYDK5DI6n09gliJsXE8eGuHkERWcRoBKm5WEAW5hNdpBojHSq/gro9ejgviyFlsmurVXZprebf1k7V00QjXBCw=="}`, '5410ef7c0caebf6c3d1f11374983e1f5cb967e33e7952711bdc4e1952cfa053d'],
    ['D', String.raw`{"received_at":"2024-05-01T00:00:00.000000Z","event":{"old":"t\tq\u0000\u001f\u000b","message":"caf\u00e9 \u2028 \u007f <b>&</b> /","actor":"\ud83d\ude00"}}`, 'f57ff0c6aec4b5bafb821ecffe621bda3bc34e2140156d7c32c3dd536c846db2'],
    ['E', '{"event":{"message":"n","z":[1,2.5,-0,1e16,1e-05,1E2,0.10,-0.0,12345678901234567890,true,null]},"received_at":"2024-05-01T00:00:00.000000Z"}', '1ac7be16933ecc86280ee32c6e947c5af05eaa7ee1e8d64ce333a39dfb6b6a6c'],
  ];
  for (const [name, text, hash] of vectors) {
    it(`vector ${name}`, async () => {
      assert.equal(sha(Buffer.from(canonicalJson(parseJson(text)), 'utf8')), hash);
      assert.equal(await envelopeHash(parseJson(text)), hash);
    });
  }
  it('sorts keys by code point, not UTF-16 unit', () => {
    assert.equal(canonicalJson(parseJson('{"\uff01":1,"\ud83d\ude00":2,"a":3}')), '{"a":3,"！":1,"😀":2}');
  });
  it('formats floats like Python repr', () => {
    assert.deepEqual([1e16, 1e-5, 100, 0.1, -0, 1.5e300, 123456789.125].map(pythonFloatRepr),
      ['1e+16', '1e-05', '100.0', '0.1', '-0.0', '1.5e+300', '123456789.125']);
  });
  it('rejects duplicate keys, trailing data and lone surrogates', () => {
    assert.throws(() => parseJson('{"a":1,"a":2}'));
    assert.throws(() => parseJson('{} x'));
    assert.throws(() => canonicalJson(parseJson('"\\ud800"')));
  });
  it('pure-JS SHA-256 fallback matches node', () => {
    for (const n of [0, 1, 55, 56, 64, 119, 1000]) {
      const b = new Uint8Array(n).map((_, i) => (i * 31) & 255);
      assert.equal(Buffer.from(sha256Sync(b)).toString('hex'), createHash('sha256').update(b).digest('hex'));
    }
  });
});

describe('membership proofs (spec §9.2, §15.2, §15.4)', () => {
  it('vector F: leaf 5 of 7', async () => {
    const leaf = sha(Buffer.from('40414243', 'hex'));
    const p = 'l:938db8c9f82c8cb58d3f3ef4fd250036a48d26a712753d2fde5abd03a85cabf4,r:86912194063de377f14ee690d64e798822ea3a58d224d8a88a1c255774bc6e5f,l:2a995b6a379616a87bfab80c662f3cd569beb40627d132a1b6b1a97cf29b5b09';
    assert.equal(await foldProof(leaf, parseMembershipProof(p)), 'ec3eeb7b484889f72f880461793794d848de1876c5438069b4f1d4b47a1fd13a');
  });
  it('vector B: leaf 1 of 3', async () => {
    const h = [0, 1, 2].map((i) => sha(`{"event":{"message":"e${i}"},"received_at":"2024-05-01T00:00:0${i}.000000Z"}`));
    assert.equal(await foldProof(h[1], parseMembershipProof(`l:${h[0]},r:${h[2]}`)), '83c6b927549cf99769b58dcc5b128a0a677dd80dc0083b0de3b259d91a7c198a');
    assert.deepEqual(parseMembershipProof(''), []);
    assert.throws(() => parseMembershipProof('l:zz'));
  });
});

describe('verifySearchEvent', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const rawPub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const tree = 'ab'.repeat(32);
  const envs = [0, 1, 2].map((i) => ({ event: { message: `m${i}`, actor: 'alice' }, received_at: `2024-05-01T00:00:0${i}.000000Z` }));
  const leaves = envs.map((e) => sha(canonicalJson(e)));
  const rootHash = H(H(leaves[0], leaves[1]), leaves[2]);
  const root = { tree_name: tree, size: 3, root_hash: rootHash, published_at: '2024-05-01T00:00:03.000000Z' };
  const signedMessage = canonicalJson({ published_at: root.published_at, root_hash: rootHash, size: 3, tree_name: tree });
  const signed = { ...root, signature: sign(null, Buffer.from(signedMessage), privateKey).toString('base64'), signed_message: signedMessage };
  const api = (over = {}) => ({
    getJson: async (p) => { assert.equal(p, '/api/v1/roots/3'); return { ...signed, ...over }; },
    getPublicKey: async () => ({ algorithm: 'ED25519', public_key: rawPub, tree_name: tree }),
  });
  const ev = (i, over = {}) => ({
    envelope: parseJson(JSON.stringify(envs[i])), hash: leaves[i], published: true, leaf_index: 2,
    membership_proof: [`r:${leaves[1]},r:${leaves[2]}`, `l:${leaves[0]},r:${leaves[2]}`, `l:${H(leaves[0], leaves[1])}`][i], ...over,
  });

  it('accepts an honest event', async () => {
    for (const i of [0, 1, 2]) {
      const r = await verifySearchEvent({ event: ev(i), root, api: api() });
      assert.equal(r.ok, true, JSON.stringify(r));
    }
  });
  it('rejects a changed envelope', async () => {
    const e = ev(1);
    e.envelope.event.actor = 'mallory';
    const r = await verifySearchEvent({ event: e, root, api: api() });
    assert.equal(r.ok, false);
    assert.match(r.reason, /hash does not match/);
  });
  it('rejects malicious proofs', async () => {
    const good = ev(1).membership_proof;
    const flip = good.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    const bad = [flip, good.replace('l:', 'r:'), good.split(',')[0], `${good},r:${leaves[0]}`, '', `x${good}`];
    for (const p of bad) {
      const r = await verifySearchEvent({ event: ev(1, { membership_proof: p }), root, api: api() });
      assert.equal(r.ok, false, `proof ${p} must fail`);
    }
  });
  it('rejects a bad or mismatched signed root', async () => {
    const cases = [
      { signature: Buffer.alloc(64).toString('base64') },
      { signed_message: signedMessage.replace('"size":3', '"size":4') },
      { root_hash: 'cd'.repeat(32) },
    ];
    for (const over of cases) {
      const r = await verifySearchEvent({ event: ev(0), root, api: api(over) });
      assert.equal(r.ok, false, JSON.stringify(over));
    }
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    const r = await verifySearchEvent({ event: ev(0), root, api: { ...api(), getPublicKey: async () => ({ public_key: other, tree_name: tree }) } });
    assert.equal(r.ok, false);
    assert.match(r.reason, /signature is invalid/);
  });
});

describe('helpers', () => {
  it('SSE parser handles split chunks, comments and CRLF', () => {
    const got = [];
    const p = new SseParser((e) => got.push(e));
    p.push(': hello\r\n\r\ndata: {"a"');
    p.push(':1}\r\n\r\nevent: other\ndata: x\n\ndata: l1\ndata: l2\n\n');
    assert.deepEqual(got.map((e) => [e.event, e.data]), [['message', '{"a":1}'], ['other', 'x'], ['message', 'l1\nl2']]);
  });
  it('builds Pangea queries from filters, quoting values', () => {
    const st = { ...DEFAULTS, q: 'login OR logout', filters: [
      { field: 'actor', op: ':', value: 'al"ice' }, { field: 'actor', op: '=', value: 'bob\\' }, { field: 'status', op: '!=', value: 'ok' },
    ] };
    assert.equal(buildQuery(st), '(login OR logout) -status="ok" (actor:"al\\"ice" OR actor="bob\\\\")');
    assert.equal(buildQuery({ ...DEFAULTS }), '');
  });
  it('diffs lines', () => {
    assert.deepEqual(diffLines(['a', 'b', 'c'], ['a', 'x', 'c']).map((l) => l.type + l.text), ['samea', 'delb', 'addx', 'samec']);
  });
});

describe('audit configs', () => {
  const schema = {
    fields: [
      { id: 'message', type: 'text', required: true, ui_default_visible: true },
      { id: 'actor', name: 'Who', type: 'string', size: 64, description: 'the user' },
      { id: 'amount', type: 'integer' },
      { id: 'ok', type: 'boolean' },
      { id: 'at', type: 'datetime' },
      { id: 'raw', type: 'string-unindexed' },
      { id: 'status', type: 'integer' },
    ],
  };

  it('builds the view of a schema: unindexed fields are neither filters nor sort keys; top values only on standard-typed fields', () => {
    const v = viewFromSchema(schema);
    assert.deepEqual(v.filterFields.map((f) => [f.id, f.type]), [['message', 'text'], ['actor', 'string'], ['amount', 'integer'], ['ok', 'boolean'], ['at', 'datetime'], ['status', 'integer']]);
    assert.equal(v.filterFields[1].label, 'Who');
    assert.equal(v.filterFields[1].description, 'the user');
    assert.ok(v.sortable.has('amount') && v.sortable.has('received_at') && !v.sortable.has('raw'));
    assert.deepEqual(v.facetFields.map((f) => f.id), ['actor'], 'status is an integer here, not the standard status');
    assert.deepEqual(schemaFields(schema).filter((f) => f.visible).map((f) => f.id), ['message']);
  });

  it('picks the named config, else the default one, else the first', () => {
    const list = [{ id: 'pci_b', default: false }, { id: 'pci_a', default: true }];
    assert.equal(pickConfig(list, 'pci_b').id, 'pci_b');
    assert.equal(pickConfig(list, 'pci_x').id, 'pci_a');
    assert.equal(pickConfig([{ id: 'pci_b' }, { id: 'pci_c' }], '').id, 'pci_b');
    assert.equal(pickConfig([], 'pci_b'), null);
  });

  it('typed filters survive the URL and become ranges (AND) and alternatives (OR)', () => {
    useFields(viewFromSchema(schema));
    try {
      const id = `pci_${'a'.repeat(32)}`;
      const st = stateFromUrl({ search: `?config=${id}&sort=amount&f=amount%3E%3D10&f=amount%3C%3D20&f=ok%3Dtrue&f=actor%3Aal&f=actor%3Abo&f=raw%3Dx&f=ok%3Ex` });
      assert.equal(st.config, id);
      assert.equal(st.sort, 'amount');
      assert.deepEqual(st.filters.map((f) => `${f.field}${f.op}${f.value}`), ['amount>=10', 'amount<=20', 'ok=true', 'actor:al', 'actor:bo'],
        'unindexed fields and operators a type does not take are dropped');
      assert.equal(buildQuery(st), 'amount>="10" amount<="20" ok="true" (actor:"al" OR actor:"bo")');
      assert.match(urlFromState(st), new RegExp(`config=${id}`));
      assert.equal(stateFromUrl({ search: '?config=nope' }).config, '');
    } finally {
      useFields(null);
    }
    assert.equal(stateFromUrl({ search: '?f=amount%3E%3D10&sort=amount' }).filters.length, 0, 'the standard fields again');
  });

  it('checks a server signature (vault_key_id) over the canonical event, and fails a changed event', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const event = parseJson('{"message":"café","amount":1250,"ok":true,"at":"2025-03-04T05:06:07Z"}');
    const pem = publicKey.export({ format: 'pem', type: 'spki' });
    const envelope = {
      event,
      public_key: canonicalJson({ algorithm: 'ED25519', key: pem, vault_key_id: 'pvi_abc', vault_key_version: 3 }),
      signature: sign(null, Buffer.from(canonicalJson(event), 'utf8'), privateKey).toString('base64'),
      received_at: '2025-03-04T05:06:08.000000Z',
    };
    const good = await verifyEventSignature(envelope);
    assert.equal(good.ok, true, good.detail);
    assert.deepEqual(good.server, { keyId: 'pvi_abc', version: 3 });
    const bad = await verifyEventSignature({ ...envelope, event: parseJson('{"message":"café","amount":1251,"ok":true,"at":"2025-03-04T05:06:07Z"}') });
    assert.equal(bad.ok, false);
    assert.match(bad.detail, /server signature \(key pvi_abc, version 3\)/i);
    assert.equal((await verifyEventSignature({ event })).ok, null);
  });
});
