//! Property tests for the Merkle log: every membership and consistency proof verifies, and any
//! changed leaf, proof step or root fails.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use trailkeep::ledger::cold::{ColdTree, MissingBlock};
use trailkeep::ledger::merkle::{CompactTree, Hash, encode_path, verify_consistency, verify_membership};

type Blocks = HashMap<usize, Arc<CompactTree>>;

/// Answers `q` on the bounded tree, giving it each block it asks for (at most `most`) from the
/// complete blocks of the leaves, as `store::tree::TreeReader` does from the database.
fn ask<T>(storage: &Blocks, most: usize, q: impl Fn(&Blocks) -> Result<T, MissingBlock>) -> Result<T, TestCaseError> {
    let mut given = Blocks::new();
    for _ in 0..=most {
        match q(&given) {
            Ok(v) => return Ok(v),
            Err(MissingBlock(b)) => {
                prop_assert!(!given.contains_key(&b), "block {} asked for again", b);
                given.insert(b, storage.get(&b).cloned().ok_or_else(|| TestCaseError::fail(format!("no block {b}")))?);
            }
        }
    }
    Err(TestCaseError::fail(format!("more than {most} blocks for one query")))
}

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The bounded cold tree (upper levels and the newest block in memory, older blocks given on
    /// request) answers exactly as the full tree: roots, membership paths and consistency proofs
    /// at random sizes, for random block sizes, with completed blocks taken at random points as
    /// the writer takes them after its commits.
    #[test]
    fn bounded_tree_equals_the_full_tree(
        n in 1usize..3000,
        shift in 0u32..9,
        seed in any::<u64>(),
        take_every in 1usize..600,
        picks in prop::collection::vec(any::<usize>(), 1..24),
    ) {
        let ls = leaves(n, seed);
        let full = CompactTree::from_leaves(ls.clone());
        let mut cold = ColdTree::new(shift);
        for (i, leaf) in ls.iter().enumerate() {
            cold.push(*leaf);
            if i % take_every == 0 {
                cold.take_completed();
            }
        }
        prop_assert_eq!(cold.len(), n);
        prop_assert_eq!(cold.current_root(), full.root(n));
        let storage: Blocks = ls
            .chunks_exact(1 << shift)
            .enumerate()
            .map(|(b, c)| (b, Arc::new(CompactTree::from_leaves(c.iter().copied()))))
            .collect();
        for pick in picks {
            let size = 1 + pick % n;
            let i = (pick / 7) % size;
            let m = 1 + (pick / 13) % size;
            // Tree-shaped queries need at most the leaf's block and the one where the size ends.
            prop_assert_eq!(ask(&storage, 1, |b| cold.root(size, b))?, full.root(size));
            prop_assert_eq!(ask(&storage, 2, |b| cold.path(i, size, b))?, full.path(i, size));
            prop_assert_eq!(ask(&storage, 2, |b| cold.consistency(m, size, b))?, full.consistency(m, size));
            // The aligned node holding leaf i, of a random height, hashes alike.
            let w = 1usize << ((pick >> 3) % 12);
            let s = i / w * w;
            let e = (s + w).min(size);
            prop_assert_eq!(ask(&storage, 2, |b| cold.range_hash(s, e, b))?, full.range_hash(s, e));
        }
    }
}
