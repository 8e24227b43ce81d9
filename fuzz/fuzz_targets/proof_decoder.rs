//! Proof and signed-root decoding (`ledger::merkle`, `ledger`; spec pangea-api.md §9–§11,
//! design reliability.md Z2/Z6). The first byte picks a mode:
//!
//! * 0, membership proof text: `decode_path` never panics; a decoded proof re-encodes to the
//!   same text exactly when the text is canonical (labels `l`/`r`, lowercase hex) and always
//!   decodes back to the same path; `verify_membership` agrees with folding the decoded path
//!   (true for the folded root, false for any other) and is false for undecodable text.
//! * 1, consistency proof items (one per line): `verify_consistency` never panics, is false
//!   if any item is malformed and otherwise agrees with the SDK's algorithm on the decoded items.
//! * 2, a generated tree (≤ 64 leaves): the compact tree equals the reference functions
//!   (root, path, consistency); honest proofs verify; a one-character change to a proof
//!   verifies only if it decodes to the same proof; dropped or reordered consistency items fail.
//! * 3, a genuine checkpoint file with one byte changed: it either fails to parse, or parses to
//!   the same signed root, or its signature no longer verifies.
//! * 4, arbitrary checkpoint file bytes: parsing, the checkpoint check and signature
//!   verification never panic.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use trailkeep::ledger::merkle::{
    CompactTree, Hash, Path, Side, consistency, decode_consistency_item, decode_path, encode_path, hash_pair, mth, path,
};
use trailkeep::ledger::{Checkpoint, Ledger, SignedRoot, check_against_checkpoint, verify_root_signature};

fn sha(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

fn fold(node: &Hash, p: &Path) -> Hash {
    p.iter().fold(*node, |acc, (side, h)| match side {
        Side::L => hash_pair(h, &acc),
        Side::R => hash_pair(&acc, h),
    })
}

fn flip(h: &Hash) -> Hash {
    let mut out = *h;
    out[31] ^= 1;
    out
}

fn is_canonical_proof(s: &str) -> bool {
    s.is_empty()
        || s.split(',').all(|item| {
            (item.starts_with("l:") || item.starts_with("r:"))
                && item[2..].len() == 64
                && item[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn membership_text(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let leaf = sha(data);
    let other = sha(&leaf);
    let Some(p) = decode_path(&s) else {
        assert!(!trailkeep::ledger::merkle::verify_membership(&leaf, &other, &s));
        assert!(!trailkeep::ledger::merkle::verify_membership(&leaf, &leaf, &s));
        assert_eq!(decode_consistency_item(&format!("x:{},{s}", hex::encode(leaf))), None);
        return;
    };
    assert_eq!(p.len(), if s.is_empty() { 0 } else { s.split(',').count() });
    let encoded = encode_path(&p);
    assert_eq!(decode_path(&encoded).as_ref(), Some(&p), "decode(encode(p)) != p");
    assert_eq!(encoded == *s, is_canonical_proof(&s), "re-encoding of {s:?} is {encoded:?}");
    let root = fold(&leaf, &p);
    assert!(trailkeep::ledger::merkle::verify_membership(&leaf, &root, &s));
    assert!(!trailkeep::ledger::merkle::verify_membership(&leaf, &flip(&root), &s));
    let item = format!("x:{},{s}", hex::encode(leaf));
    assert_eq!(decode_consistency_item(&item), Some((leaf, p)));
    assert!(trailkeep::ledger::merkle::verify_consistency(&root, &leaf, &[item]));
}

fn consistency_text(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let items: Vec<String> = s.split('\n').map(str::to_string).collect();
    let h = sha(data);
    let decoded: Option<Vec<(Hash, Path)>> = items.iter().map(|i| decode_consistency_item(i)).collect();
    let Some(decoded) = decoded else {
        assert!(!trailkeep::ledger::merkle::verify_consistency(&h, &h, &items));
        return;
    };
    let (first, rest) = decoded.split_first().expect("split yields at least one item");
    let acc = rest.iter().fold(first.0, |acc, (node, _)| hash_pair(node, &acc));
    let new_root = fold(&first.0, &first.1);
    let all_members = decoded.iter().all(|(node, p)| fold(node, p) == new_root);
    assert_eq!(trailkeep::ledger::merkle::verify_consistency(&new_root, &acc, &items), all_members);
    assert!(!trailkeep::ledger::merkle::verify_consistency(&new_root, &flip(&acc), &items));
    assert!(!trailkeep::ledger::merkle::verify_consistency(&flip(&new_root), &acc, &items));
    assert!(!trailkeep::ledger::merkle::verify_consistency(&new_root, &acc, &[]));
}

/// Replaces the byte at `pos` (the proof texts are ASCII).
fn mutate(s: &str, pos: usize, with: u8) -> String {
    let mut b = s.as_bytes().to_vec();
    b[pos] = with;
    String::from_utf8_lossy(&b).into_owned()
}

const ALPHABET: &[u8] = b"0123456789abcdefABCDEF:,lrx- ";

fn generated_tree(data: &[u8]) {
    let mut bytes = data.iter().copied().chain(std::iter::repeat(0));
    let mut next = move || bytes.next().unwrap_or(0) as usize;
    let n = 1 + next() % 64;
    let i = next() % n;
    let m = 1 + next() % n;
    let seed = next() as u8;
    let leaves: Vec<Hash> = (0..n).map(|k| sha(&[seed, k as u8])).collect();
    let tree = CompactTree::from_leaves(leaves.iter().copied());
    let root = mth(&leaves).expect("non-empty");
    assert_eq!(tree.root(n), Some(root));
    assert_eq!(tree.root(n + 1), None);
    assert_eq!(tree.root(0), None);

    let p = path(i, &leaves);
    assert_eq!(tree.path(i, n), p, "compact path of leaf {i} in {n}");
    let proof = encode_path(&p);
    assert_eq!(decode_path(&proof).as_ref(), Some(&p));
    let verify = trailkeep::ledger::merkle::verify_membership;
    assert!(verify(&leaves[i], &root, &proof), "honest proof of leaf {i} in {n}");
    if n > 1 {
        assert!(!verify(&leaves[(i + 1) % n], &root, &proof), "proof of leaf {i} verifies another leaf");
    }
    if !proof.is_empty() {
        let pos = (next() << 8 | next()) % proof.len();
        let changed = mutate(&proof, pos, ALPHABET[next() % ALPHABET.len()]);
        let same = decode_path(&changed).as_ref() == Some(&p);
        assert_eq!(verify(&leaves[i], &root, &changed), same, "changed proof {changed:?} (was {proof:?})");
        let mut shorter = proof.clone();
        shorter.remove(pos);
        let same = decode_path(&shorter).as_ref() == Some(&p);
        assert_eq!(verify(&leaves[i], &root, &shorter), same, "shortened proof {shorter:?}");
    }

    if m < n {
        let old_root = mth(&leaves[..m]).expect("non-empty");
        let items = consistency(m, &leaves);
        assert_eq!(tree.consistency(m, n), items, "compact consistency {m} -> {n}");
        let verify_c = trailkeep::ledger::merkle::verify_consistency;
        assert!(verify_c(&root, &old_root, &items), "honest consistency {m} -> {n}");
        let decoded: Vec<(Hash, Path)> =
            items.iter().map(|it| decode_consistency_item(it).expect("own item decodes")).collect();
        for ((node, p), item) in decoded.iter().zip(&items) {
            assert_eq!(&format!("x:{},{}", hex::encode(node), encode_path(p)), item);
        }
        let k = next() % items.len();
        let pos = (next() << 8 | next()) % items[k].len();
        let mut changed = items.clone();
        changed[k] = mutate(&items[k], pos, ALPHABET[next() % ALPHABET.len()]);
        let same = decode_consistency_item(&changed[k]).as_ref() == Some(&decoded[k]);
        assert_eq!(verify_c(&root, &old_root, &changed), same, "changed item {:?} (was {:?})", changed[k], items[k]);
        if items.len() > 1 {
            assert!(!verify_c(&root, &old_root, &items[1..]), "dropped first item verifies");
            assert!(!verify_c(&root, &old_root, &items[..items.len() - 1]), "dropped last item verifies");
            let reversed: Vec<String> = items.iter().rev().cloned().collect();
            assert!(!verify_c(&root, &old_root, &reversed), "reordered items verify");
        }
        assert!(!verify_c(&old_root, &root, &items), "swapped roots verify");
    }
}

fn ledger_and_tree() -> (Ledger, CompactTree) {
    let tree = CompactTree::from_leaves((0..5u8).map(|k| sha(&[k])));
    (Ledger::new(tree.clone(), "fuzz-tree".into(), [7; 32]), tree)
}

fn genuine_checkpoint(ledger: &Ledger, tree: &CompactTree, size: u64) -> Checkpoint {
    let root = tree.root(size as usize).expect("size within the tree");
    let published_at = "2024-05-01T12:00:01.000001Z";
    Checkpoint {
        root: SignedRoot {
            tree_name: ledger.tree_name.clone(),
            size,
            root_hash: hex::encode(root),
            published_at: published_at.into(),
            signature: B64.encode(ledger.sign(size, &root, published_at)),
        },
        public_key: ledger.public_key_b64(),
    }
}

fn checkpoint_mutation(data: &[u8]) {
    let [size, hi, lo, with, ..] = *data else { return };
    let (ledger, tree) = ledger_and_tree();
    let cp = genuine_checkpoint(&ledger, &tree, 1 + u64::from(size) % 5);
    assert!(verify_root_signature(&ledger.public_key(), &cp.root));
    check_against_checkpoint(&tree, &ledger.tree_name, &cp).expect("genuine checkpoint matches");
    // As `write_checkpoint` writes it.
    let mut file = serde_json::to_vec_pretty(&cp).expect("serialise");
    file.push(b'\n');
    let pos = (usize::from(hi) << 8 | usize::from(lo)) % file.len();
    file[pos] = with;
    let Ok(parsed) = serde_json::from_slice::<Checkpoint>(&file) else { return };
    let _ = check_against_checkpoint(&tree, &ledger.tree_name, &parsed);
    if parsed.root == cp.root {
        check_against_checkpoint(&tree, &ledger.tree_name, &parsed).expect("same root still matches");
    } else {
        assert!(
            !verify_root_signature(&ledger.public_key(), &parsed.root),
            "changed byte {pos} to {with:#04x}: {:?} still verifies",
            parsed.root
        );
    }
}

fn checkpoint_bytes(data: &[u8]) {
    let Ok(cp) = serde_json::from_slice::<Checkpoint>(data) else { return };
    let (ledger, tree) = ledger_and_tree();
    let _ = check_against_checkpoint(&tree, &ledger.tree_name, &cp);
    let _ = check_against_checkpoint(&tree, &cp.root.tree_name, &cp);
    let _ = verify_root_signature(&ledger.public_key(), &cp.root);
    let round: Checkpoint = serde_json::from_slice(&serde_json::to_vec(&cp).expect("serialise")).expect("re-parse");
    assert_eq!(round, cp);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 5 {
        0 => membership_text(rest),
        1 => consistency_text(rest),
        2 => generated_tree(rest),
        3 => checkpoint_mutation(rest),
        _ => checkpoint_bytes(rest),
    }
});
