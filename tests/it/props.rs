//! Property tests for the Merkle log: every membership and consistency proof verifies, and any
//! changed leaf, proof step or root fails.

use proptest::prelude::*;
use trailkeep::ledger::merkle::{CompactTree, Hash, encode_path, verify_consistency, verify_membership};

fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            use sha2::Digest;
            sha2::Sha256::digest(format!("{seed}:{i}").as_bytes()).into()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn membership_proofs_verify_and_tampering_fails(n in 1usize..2000, seed in any::<u64>(), pick in any::<usize>(), flip in any::<usize>()) {
        let ls = leaves(n, seed);
        let tree = CompactTree::from_leaves(ls.clone());
        let size = 1 + pick % n;
        let i = (pick / 7) % size;
        let root = tree.root(size).unwrap();
        let proof = encode_path(&tree.path(i, size));
        prop_assert!(verify_membership(&ls[i], &root, &proof));
        let mut bad_leaf = ls[i];
        bad_leaf[flip % 32] ^= 1 << (flip % 8);
        prop_assert!(!verify_membership(&bad_leaf, &root, &proof));
        let mut bad_root = root;
        bad_root[flip % 32] ^= 1;
        prop_assert!(!verify_membership(&ls[i], &bad_root, &proof));
        if !proof.is_empty() {
            let mut bytes = proof.clone().into_bytes();
            let pos = 2 + flip % (bytes.len() - 2);
            if bytes[pos].is_ascii_hexdigit() {
                bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
                prop_assert!(!verify_membership(&ls[i], &root, std::str::from_utf8(&bytes).unwrap()));
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails(n in 2usize..2000, seed in any::<u64>(), pick in any::<usize>()) {
        let ls = leaves(n, seed);
        let tree = CompactTree::from_leaves(ls);
        let m = 1 + pick % (n - 1);
        let proof = tree.consistency(m, n);
        let (old, new) = (tree.root(m).unwrap(), tree.root(n).unwrap());
        prop_assert!(verify_consistency(&new, &old, &proof));
        let mut wrong_old = old;
        wrong_old[0] ^= 1;
        prop_assert!(!verify_consistency(&new, &wrong_old, &proof));
        if proof.len() > 1 {
            prop_assert!(!verify_consistency(&new, &old, &proof[1..]));
        }
    }
}
