// In-browser verification of one search event (spec pangea-api.md §8–§10):
//   1. SHA-256 of the canonical JSON of the envelope equals the event's hash;
//   2. the membership proof folds the hash up to the root's hash;
//   3. the server's signed root of that size names the same root, and its Ed25519 signature
//      verifies against the server public key.
// The client signature that an SDK may have attached (§11) is checked as extra information.

import { canonicalJson, parseJson } from './json.js';
import { sha256, hasWebCrypto } from './sha256.js';

const enc = new TextEncoder();

export function bytesToHex(b) {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function hexToBytes(hex) {
  if (typeof hex !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new Error('not a hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let k = 0; k < out.length; k++) out[k] = parseInt(hex.substr(k * 2, 2), 16);
  return out;
}

export function base64ToBytes(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.trim())) throw new Error('not standard base64');
  const bin = atob(s.trim());
  const out = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) out[k] = bin.charCodeAt(k);
  return out;
}

/** Parses "l:<hex>,r:<hex>,…" (leaf upward). "" or null means no items. */
export function parseMembershipProof(proof) {
  if (proof === null || proof === undefined || proof === '') return [];
  if (typeof proof !== 'string') throw new Error('membership proof is not a string');
  return proof.split(',').map((item, idx) => {
    const m = /^([a-z]+):([0-9a-fA-F]{64})$/.exec(item);
    if (!m) throw new Error(`membership proof item ${idx + 1} is malformed`);
    return { side: m[1] === 'l' ? 'l' : 'r', hex: m[2].toLowerCase() };
  });
}

export async function hashPair(left, right) {
  const buf = new Uint8Array(64);
  buf.set(left, 0);
  buf.set(right, 32);
  return sha256(buf);
}

/** Folds a leaf hash (hex) through proof items; returns the resulting root hex. */
export async function foldProof(leafHex, items) {
  let node = hexToBytes(leafHex);
  if (node.length !== 32) throw new Error('leaf hash is not 32 bytes');
  for (const it of items) {
    const sib = hexToBytes(it.hex);
    node = it.side === 'l' ? await hashPair(sib, node) : await hashPair(node, sib);
  }
  return bytesToHex(node);
}

export async function envelopeHash(envelope) {
  return bytesToHex(await sha256(enc.encode(canonicalJson(envelope))));
}

async function ed25519Verify(rawKey, signature, message) {
  if (!hasWebCrypto()) throw new Error('WebCrypto is unavailable: open the UI over HTTPS or on localhost to check signatures');
  let key;
  try {
    key = await crypto.subtle.importKey('raw', rawKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    throw new Error(`this browser cannot import an Ed25519 key (${e.name})`);
  }
  return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, message);
}

function pemBody(pem) {
  const m = /-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/.exec(pem);
  return m ? m[1].replace(/\s+/g, '') : null;
}

/**
 * The signature an event carries, checked in this browser: Ed25519 over the canonical JSON of
 * the event (the same bytes for an SDK's local signature, §11.2, and for the server's signature
 * of a server-signing audit config, whose public_key JSON names the key: vault_key_id and
 * vault_key_version). Returns { ok: true|false|null (none / not checkable), detail, server }
 * where server is { keyId, version } for a server signature, else null.
 */
export async function verifyEventSignature(envelope) {
  const { signature, public_key: pk } = envelope ?? {};
  if (!signature || !pk) return { ok: null, detail: 'The event carries no signature.', server: null };
  let server = null;
  let keyText = pk;
  try {
    const parsed = JSON.parse(pk);
    if (parsed && typeof parsed === 'object' && typeof parsed.key === 'string') {
      keyText = parsed.key;
      if (typeof parsed.vault_key_id === 'string') server = { keyId: parsed.vault_key_id, version: parsed.vault_key_version ?? null };
    }
  } catch { /* a raw key string */ }
  const who = server ? `The server signature (key ${server.keyId}, version ${server.version ?? '?'})` : 'The client signature';
  try {
    let der;
    if (typeof keyText !== 'string') throw new Error('unreadable public key');
    if (keyText.startsWith('----')) {
      const body = pemBody(keyText);
      if (!body) throw new Error('unreadable PEM public key');
      der = base64ToBytes(body);
    } else if (keyText.startsWith('ssh-')) {
      return { ok: null, detail: 'OpenSSH client keys are not checked in the browser.', server };
    } else {
      der = base64ToBytes(keyText);
    }
    if (der.length < 32) throw new Error('the public key is too short');
    const raw = der.slice(der.length - 32);
    const sig = base64ToBytes(signature);
    if (sig.length !== 64) throw new Error('the signature is not 64 bytes');
    const ok = await ed25519Verify(raw, sig, enc.encode(canonicalJson(envelope.event)));
    return { ok, detail: ok ? `${who} over the event verifies.` : `${who} over the event does NOT verify.`, server };
  } catch (e) {
    return { ok: false, detail: `${who} could not be checked: ${e.message}`, server };
  }
}

/** Client signature of an SDK-signed event (§11.2): pass / fail / none, with a note. */
export async function verifyClientSignature(envelope) {
  const r = await verifyEventSignature(envelope);
  return { ok: r.ok, detail: r.detail };
}

/**
 * Verifies one SearchEvent.
 * ctx = { event, root, unpublishedRoot, api } where api.getJson(path) fetches with the key.
 * Returns { ok, reason, checks: [{ label, ok, detail }] }.
 */
export async function verifySearchEvent(ctx) {
  const checks = [];
  const { event: ev, api } = ctx;
  const add = (label, ok, detail) => { checks.push({ label, ok, detail }); return ok; };
  const done = (reason) => ({ ok: reason === null, reason, checks });

  // 1. hash
  let computed;
  try {
    computed = await envelopeHash(ev.envelope);
  } catch (e) {
    add('Event hash', false, `The envelope cannot be canonicalised: ${e.message}`);
    return done('the envelope cannot be canonicalised');
  }
  const claimed = typeof ev.hash === 'string' ? ev.hash : '';
  if (!add('Event hash', computed === claimed,
    computed === claimed
      ? `SHA-256 of the canonical envelope is ${computed}, as the server says.`
      : `SHA-256 of the canonical envelope is ${computed}, but the server says ${claimed || '(none)'}. The event content was changed after it was logged.`)) {
    return done('the event hash does not match its content');
  }

  // 1b. the server's own signature (server-signing audit configs) must verify too
  const sig = await verifyEventSignature(ev.envelope);
  if (sig.server && !add('Server signature', sig.ok === true, sig.detail)) {
    return done('the server signature over the event does not verify');
  }

  // 2. membership proof → root
  if (ev.published === false) {
    add('Published', false, 'The event is not published yet; no signed root covers it.');
    return done('the event is not yet published under a signed root');
  }
  let root = ctx.root;
  if (!root && Number.isInteger(ev.leaf_index)) {
    try {
      root = await api.getJson(`/api/v1/roots/${ev.leaf_index + 1}`);
    } catch (e) {
      add('Root', false, `Could not fetch the root of size ${ev.leaf_index + 1}: ${e.message}`);
      return done('no root to check the proof against');
    }
  }
  if (!root || typeof root.root_hash !== 'string') {
    add('Root', false, 'The server sent no root for this event.');
    return done('the server sent no root to check the proof against');
  }
  let items;
  try {
    items = parseMembershipProof(ev.membership_proof);
  } catch (e) {
    add('Membership proof', false, e.message);
    return done('the membership proof is malformed');
  }
  if (ev.membership_proof === undefined) {
    add('Membership proof', false, 'The server sent no membership proof.');
    return done('the server sent no membership proof');
  }
  const folded = await foldProof(computed, items);
  const rootHash = root.root_hash.toLowerCase();
  if (!add('Membership proof', folded === rootHash,
    folded === rootHash
      ? `${items.length} proof step(s) lead from the event hash to root ${rootHash} (tree size ${root.size}).`
      : `The proof leads to ${folded}, not to the root ${rootHash}.`)) {
    return done('the membership proof does not lead to the root');
  }

  // 3. signed root
  let signed;
  let pub;
  try {
    [signed, pub] = await Promise.all([api.getJson(`/api/v1/roots/${root.size}`), api.getPublicKey()]);
  } catch (e) {
    add('Root signature', false, `Could not fetch the signed root or the public key: ${e.message}`);
    return done('the signed root could not be fetched');
  }
  let msg;
  try {
    msg = parseJson(signed.signed_message);
  } catch {
    add('Root signature', false, 'The signed message is not valid JSON.');
    return done('the signed root message is unreadable');
  }
  const want = { tree_name: root.tree_name, size: root.size, root_hash: rootHash };
  if (root.published_at !== undefined) want.published_at = root.published_at;
  const mismatches = [];
  const keys = msg && typeof msg === 'object' ? Object.keys(msg).sort() : [];
  if (keys.join(',') !== 'published_at,root_hash,size,tree_name') mismatches.push('unexpected fields');
  for (const [k, v] of Object.entries(want)) {
    const got = msg?.[k];
    const same = k === 'root_hash' ? typeof got === 'string' && got.toLowerCase() === v : got === v;
    if (!same) mismatches.push(k);
  }
  if (signed.root_hash?.toLowerCase() !== rootHash || signed.size !== root.size) mismatches.push('signed root record');
  if (pub.tree_name !== undefined && pub.tree_name !== root.tree_name) mismatches.push('tree name of the server key');
  if (mismatches.length) {
    add('Root signature', false, `The signed root does not describe this root (${mismatches.join(', ')}).`);
    return done('the signed root does not match the root');
  }
  let ok;
  try {
    const key = base64ToBytes(pub.public_key);
    const sig = base64ToBytes(signed.signature);
    if (key.length !== 32) throw new Error('the server public key is not 32 bytes');
    if (sig.length !== 64) throw new Error('the root signature is not 64 bytes');
    ok = await ed25519Verify(key, sig, enc.encode(signed.signed_message));
  } catch (e) {
    add('Root signature', false, e.message);
    return done('the root signature could not be checked');
  }
  if (!add('Root signature', ok, ok
    ? `Root of size ${root.size} is signed by the server key ${pub.public_key}.`
    : 'The Ed25519 signature on the root does not verify against the server key.')) {
    return done('the root signature is invalid');
  }

  if (!sig.server) checks.push({ label: 'Client signature', ok: sig.ok, detail: sig.ok === null ? 'The event carries no client signature.' : sig.detail, info: true });
  return done(null);
}

/**
 * Checks a signed root (`/api/v1/roots/{size}` or the integrity page's newest root) against the
 * server's public key in this browser: the signed message must describe the root and carry a
 * valid Ed25519 signature. Returns { ok, detail }.
 */
export async function verifySignedRoot(root, pub) {
  let msg;
  try {
    msg = parseJson(root.signed_message);
  } catch {
    return { ok: false, detail: 'The signed message is not valid JSON.' };
  }
  const keys = msg && typeof msg === 'object' ? Object.keys(msg).sort().join(',') : '';
  const same = keys === 'published_at,root_hash,size,tree_name' && msg.tree_name === root.tree_name
    && msg.size === root.size && typeof msg.root_hash === 'string' && msg.root_hash.toLowerCase() === String(root.root_hash).toLowerCase()
    && msg.published_at === root.published_at && (pub.tree_name === undefined || pub.tree_name === root.tree_name);
  if (!same) return { ok: false, detail: 'The signed message does not describe this root.' };
  try {
    const key = base64ToBytes(pub.public_key);
    const sig = base64ToBytes(root.signature);
    if (key.length !== 32 || sig.length !== 64) return { ok: false, detail: 'The key or the signature has the wrong length.' };
    const ok = await ed25519Verify(key, sig, enc.encode(root.signed_message));
    return { ok, detail: ok ? 'The Ed25519 signature verifies against the server key, checked in this browser.' : 'The Ed25519 signature does NOT verify against the server key.' };
  } catch (e) {
    return { ok: null, detail: `The signature could not be checked in this browser: ${e.message}` };
  }
}
