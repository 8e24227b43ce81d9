// Pangea's official Node SDK (pangea-node-sdk 5.6.0) against `trailkeep serve`: it sends a local
// signature's public_key as {"key":…,"algorithm":…} and checks envelope hashes with RFC 8785
// canonical JSON, where trailkeep (like Pangea's service) hashes Python's canonical JSON of an
// envelope holding the public_key in canonical form. Logging with a local signature, searching
// with the SDK's hash and signature checks, custom-schema integers, server-signed events, and
// config_id (`configID`) all work unchanged; the one documented difference (integers beyond
// ±(2^53 − 1)) fails the SDK's own hash check, as asserted below.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { generateKeyPairSync, sign } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditService, PangeaConfig, PangeaErrors } from 'pangea-node-sdk';

const BIN = process.env.TRAILKEEP_BIN;
let server;

async function startServer() {
  const dir = await mkdtemp(join(tmpdir(), 'trailkeep-node-'));
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TRAILKEEP_LOG: 'warn' },
  });
  let out = '';
  const srv = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server did not start:\n${out}`)), 60000);
    child.stdout.on('data', (d) => {
      out += d;
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      const key = /admin key: (\S+)/.exec(out);
      if (url && key) {
        clearTimeout(timer);
        res({ child, dir, url: url[1], admin: key[1] });
      }
    });
    child.on('exit', (code) => rej(new Error(`server exited with ${code}:\n${out}`)));
  });
  child.removeAllListeners('exit');
  return srv;
}

function cli(...args) {
  return execFileSync(BIN, [...args, '--data-dir', server.dir], { encoding: 'utf8' }).trim().split('\n').pop();
}

async function createConfig(name, schema, signing = 'none') {
  const args = ['configs', 'create', '--name', name, '--signing', signing];
  if (schema) {
    const path = join(server.dir, `${name}.json`);
    await writeFile(path, JSON.stringify(schema));
    args.push('--schema', path);
  }
  return cli(...args);
}

function boundKey(configs) {
  const args = ['keys', 'create', '--name', `node-${configs.length}`, '--scope', 'ingest', '--scope', 'search'];
  for (const c of configs) args.push('--config', c);
  return cli(...args);
}

function audit(key, configID) {
  const config = new PangeaConfig({ baseUrlTemplate: `${server.url}/pangea` });
  return new AuditService(key, config, undefined, configID);
}

/** A local signer as the SDK's LogOptions.signer expects it (Ed25519, SPKI PEM public key). */
function localSigner() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    sign: (data) => sign(null, Buffer.from(data), privateKey).toString('base64'),
    getPublicKey: () => publicKey.export({ type: 'spki', format: 'pem' }),
    getAlgorithm: () => 'ED25519',
  };
}

before(async () => {
  assert.ok(BIN, 'set TRAILKEEP_BIN (tests/node/run.sh does)');
  server = await startServer();
});

after(async () => {
  if (!server) return;
  const exited = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGTERM');
  await exited;
  await rm(server.dir, { recursive: true, force: true });
});

test('local signature: the public key is stored in canonical form and verifies, hash checks pass', async () => {
  const a = audit(server.admin);
  const signer = localSigner();
  const event = {
    message: 'héllo ☃ 😀 "quoted" back\\slash tab\t nl\n nul\u0000 ls\u2028 </script>',
    actor: 'ålice', action: 'login', status: 'success', new: { b: 1, a: 'ü' },
  };
  const r = await a.log(event, { signer, verify: true, verbose: true });
  assert.equal(r.result.signature_verification, 'pass');
  assert.equal(r.result.membership_verification, 'pass');
  const pk = r.result.envelope.public_key;
  assert.ok(pk.startsWith('{"algorithm":"ED25519","key":"-----BEGIN PUBLIC KEY-----\\n'), pk);
  // The Node SDK sent {"key":…,"algorithm":…}; the stored text has sorted keys.
  assert.equal(pk, JSON.stringify({ algorithm: 'ED25519', key: signer.getPublicKey() }));
  // Search: the SDK recomputes every hash (RFC 8785) and throws on a mismatch; it checks signatures.
  const s = await a.search('actor:ålice', { limit: 10 });
  assert.ok(s.result.events.length >= 1);
  for (const e of s.result.events) {
    assert.equal(e.signature_verification, 'pass');
  }
  const bulk = await a.logBulk([{ message: 'b1 ü' }, { message: 'b2 \u007f' }], { signer, verbose: true });
  for (const x of bulk.result.results) assert.equal(x.signature_verification, 'pass');
});

test('custom schema: integers within 2^53 verify; beyond, the SDK hash check fails (documented)', async () => {
  const schema = { fields: [
    { id: 'message', type: 'text', required: true }, { id: 'n', type: 'integer' },
    { id: 'ok', type: 'boolean' }, { id: 'at', type: 'datetime' }, { id: 'who', type: 'string' },
  ] };
  const cid = await createConfig('node-custom', schema);
  const a = audit(boundKey([cid]));
  const signer = localSigner();
  const r = await a.logBulk([
    { message: 'small', n: 42, ok: true, at: '2025-01-02T03:04:05.123456Z', who: 'ünï' },
    { message: 'negative', n: -9007199254740991, ok: false },
    { message: 'zero', n: 0 },
  ], { signer, verbose: true });
  for (const x of r.result.results) assert.equal(x.signature_verification, 'pass');
  const s = await a.search('n<=42 AND n>=-9007199254740991', { limit: 10 });
  assert.deepEqual(s.result.events.map((e) => e.envelope.event.message).sort(), ['negative', 'small', 'zero']);
  // JavaScript cannot even send 2^53 + 1; another client (here raw HTTP) can, and the Node SDK
  // then parses the stored event with a rounded integer: its hash check fails.
  const res = await fetch(`${server.url}/pangea/v1/log`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.admin}`, 'Content-Type': 'application/json' },
    body: `{"event":{"message":"too big for JavaScript","n":9007199254740993},"config_id":"${cid}"}`,
  });
  assert.equal(res.status, 200, await res.clone().text());
  await assert.rejects(
    a.search('message:JavaScript', { limit: 10 }),
    (e) => e instanceof PangeaErrors.AuditEventError,
  );
  const fine = await a.search('message:JavaScript', { limit: 10 }, { skipEventVerification: true });
  assert.equal(fine.result.events.length, 1);
});

test('server signing: the server signature verifies in the Node SDK, across a rotation', async () => {
  const cid = await createConfig('node-signed', null, 'server');
  const a = audit(boundKey([cid]));
  const first = await a.log({ message: 'signed by the server' }, { verify: true, verbose: true });
  assert.equal(first.result.signature_verification, 'pass');
  cli('keys', 'rotate-signing', '--config', cid);
  const second = await a.log({ message: 'signed again' }, { verify: true, verbose: true });
  assert.equal(second.result.signature_verification, 'pass');
  assert.equal(JSON.parse(second.result.envelope.public_key).vault_key_version, 2);
  const s = await a.search('', { limit: 10 });
  assert.equal(s.result.events.length, 2);
  for (const e of s.result.events) assert.equal(e.signature_verification, 'pass');
});

test('configID selects the config; a key with two configs must send one', async () => {
  const c1 = await createConfig('node-one');
  const c2 = await createConfig('node-two');
  const key = boundKey([c1, c2]);
  await assert.rejects(audit(key).log({ message: 'which?' }), (e) => e instanceof PangeaErrors.MissingConfigID);
  await audit(key, c1).log({ message: 'in one' });
  await audit(key, c2).log({ message: 'in two' });
  const s1 = await audit(key, c1).search('', { limit: 10 });
  assert.deepEqual(s1.result.events.map((e) => e.envelope.event.message), ['in one']);
});

test('events logged through the H2O API hold nested objects: the Node SDK hash check fails (documented)', async () => {
  const marker = `h2o${Date.now()}`;
  const res = await fetch(`${server.url}/v1/events?eventId=${crypto.randomUUID()}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      eventTime: new Date().toISOString(), eventSource: 'node-test', action: `actions/${marker}/CREATE`,
      readOnly: false, principal: 'users/node', sourceIpAddress: '203.0.113.7', resource: '//x/workspaces/w1/t/1',
      metadata: { k: 'v' }, status: { code: 0, message: '' },
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const a = audit(server.admin);
  // The Node SDK turns the event's nested objects (metadata) into strings before hashing; Pangea
  // events never have any (clients send them as text), H2O events do.
  await assert.rejects(a.search(`action:${marker}`, { limit: 5 }), (e) => e instanceof PangeaErrors.AuditEventError);
  const s = await a.search(`action:${marker}`, { limit: 5 }, { skipEventVerification: true });
  assert.equal(s.result.events.length, 1);
});
