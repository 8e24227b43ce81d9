//! Merkle math of the Pangea dialect (spec §9): pure functions, no I/O.
//!
//! * Node hash `H(a, b) = SHA-256(a ‖ b)` with **no** RFC 6962 domain-separation prefixes;
//!   leaves are used as they are (event hashes, or buffer roots in the cold tree).
//! * Shape is RFC 6962's: `n ≥ 2` leaves split at `k` = the largest power of two strictly less
//!   than `n`.
//! * Membership proofs are `"<side>:<hex>"` items joined by `,`, leaf upward; side `l` means the
//!   sibling is on the left, anything else means right.
//! * Consistency proofs are lists of `"x:<node hex>,<membership proof of node in new tree>"`,
//!   smallest (right-most) old subtree first.
//!
//! The recursive free functions ([`mth`], [`path`], [`node_path`], [`consistency`]) are the
//! reference definitions and touch every leaf; [`CompactTree`] keeps every complete aligned
//! subtree hash and answers the same questions for any prefix size with O(log n) hashing (the
//! trees of one buffer's events, and the blocks of the cold tree, `super::cold`).
//! Nothing in this module panics on caller input; invalid arguments give empty results
//! (documented per function) and verifiers answer `false` to anything malformed.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `H(l, r) = SHA-256(l ‖ r)`, no prefixes.
pub fn hash_pair(l: &Hash, r: &Hash) -> Hash {
    Sha256::new().chain_update(l).chain_update(r).finalize().into()
}

/// Largest power of two strictly less than `n` (`n ≥ 2`; returns 0 for `n < 2`).
pub(crate) fn split_point(n: usize) -> usize {
    if n < 2 { 0 } else { 1 << (usize::BITS - 1 - (n - 1).leading_zeros()) }
}

/// `MTH(D)`: the Merkle tree hash of `leaves`; `None` for an empty slice.
pub fn mth(leaves: &[Hash]) -> Option<Hash> {
    match leaves {
        [] => None,
        [one] => Some(*one),
        _ => {
            let k = split_point(leaves.len());
            let l = mth(&leaves[..k])?;
            let r = mth(&leaves[k..])?;
            Some(hash_pair(&l, &r))
        }
    }
}

/// Which side of the running node a proof item's sibling is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Sibling on the left: `node = H(sibling, node)`. Encoded `l`.
    L,
    /// Sibling on the right: `node = H(node, sibling)`. Encoded `r`.
    R,
}

/// Proof items from the leaf (or node) upward.
pub type Path = Vec<(Side, Hash)>;

/// `MTH` of a non-empty slice (internal: callers guarantee non-emptiness).
fn mth_nonempty(leaves: &[Hash]) -> Hash {
    mth(leaves).unwrap_or([0; 32])
}

/// `PATH(i, D[0:n])` of spec §9.2: audit path of leaf `i`, leaf upward.
/// Returns an empty path when `i >= leaves.len()` (and, correctly, for a one-leaf tree).
pub fn path(i: usize, leaves: &[Hash]) -> Path {
    let n = leaves.len();
    if i >= n || n == 1 {
        return Vec::new();
    }
    let k = split_point(n);
    if i < k {
        let mut p = path(i, &leaves[..k]);
        p.push((Side::R, mth_nonempty(&leaves[k..])));
        p
    } else {
        let mut p = path(i - k, &leaves[k..]);
        p.push((Side::L, mth_nonempty(&leaves[..k])));
        p
    }
}

/// `NODE_PATH(s, e, D[0:n])` of spec §9.2: path of the tree node covering `D[s:e]`, node upward.
/// `[s, e)` must be a node of the tree (e.g. an element of [`subtrees`] of a smaller size);
/// otherwise, or when `(s, e) == (0, n)`, the result is empty.
pub fn node_path(s: usize, e: usize, leaves: &[Hash]) -> Path {
    let n = leaves.len();
    if s >= e || e > n || (s == 0 && e == n) {
        return Vec::new();
    }
    let k = split_point(n);
    if e <= k {
        let mut p = node_path(s, e, &leaves[..k]);
        if p.is_empty() && (s, e) != (0, k) {
            return Vec::new();
        }
        p.push((Side::R, mth_nonempty(&leaves[k..])));
        p
    } else if s >= k {
        let mut p = node_path(s - k, e - k, &leaves[k..]);
        if p.is_empty() && (s - k, e - k) != (0, n - k) {
            return Vec::new();
        }
        p.push((Side::L, mth_nonempty(&leaves[..k])));
        p
    } else {
        Vec::new() // straddles the split: not a node
    }
}

/// `"l:<hex>,r:<hex>,…"` (lowercase); `""` for an empty path.
pub fn encode_path(p: &[(Side, Hash)]) -> String {
    let mut out = String::with_capacity(p.len() * 67);
    for (i, (side, h)) in p.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(match side {
            Side::L => "l:",
            Side::R => "r:",
        });
        out.push_str(&hex::encode(h));
    }
    out
}

/// `SUBTREES(m)` of spec §9.3: the binary decomposition of `[0, m)` into complete aligned
/// subtrees, left to right (largest first). Empty for `m == 0`.
pub fn subtrees(m: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(m.count_ones() as usize);
    let mut s = 0;
    while s < m {
        let rest = m - s;
        let size = 1usize << (usize::BITS - 1 - rest.leading_zeros());
        out.push((s, s + size));
        s += size;
    }
    out
}

/// One consistency proof item: `x:<node hex>,<membership proof of the node>`.
pub(crate) fn consistency_item(node: &Hash, p: &[(Side, Hash)]) -> String {
    format!("x:{},{}", hex::encode(node), encode_path(p))
}

/// `CONSISTENCY(m, D[0:n])` of spec §9.3 (Pangea format), smallest old subtree first.
/// Empty unless `0 < m < n`.
pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<String> {
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subtrees(m)
        .into_iter()
        .rev()
        .map(|(s, e)| consistency_item(&mth_nonempty(&leaves[s..e]), &node_path(s, e, leaves)))
        .collect()
}

/// Parses exactly 64 hex digits (either case) into a hash.
pub fn parse_hash(hex: &str) -> Option<Hash> {
    if hex.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    hex::decode_to_slice(hex, &mut h).ok()?;
    Some(h)
}

/// One membership proof item `<label>:<64 hex>`: label `l` = sibling on the left, any other
/// label (Pangea uses `r`) = right, as in the SDK's `decode_membership_proof`.
fn decode_item(item: &str) -> Option<(Side, Hash)> {
    let (label, hex) = item.split_once(':')?;
    let side = if label == "l" { Side::L } else { Side::R };
    Some((side, parse_hash(hex)?))
}

/// Decodes a membership proof string (the inverse of [`encode_path`]); `None` if any item is
/// malformed. `""` is the empty path. Hex may be either case and labels other than `l` mean
/// right, so only lowercase proofs labelled `l`/`r` re-encode to the same text.
pub fn decode_path(proof: &str) -> Option<Path> {
    if proof.is_empty() {
        return Some(Vec::new());
    }
    proof.split(',').map(decode_item).collect()
}

/// Decodes one consistency proof item `"<label>:<node hex>,<membership proof>"` into the old
/// subtree node and its path in the new tree; the label is ignored, as in the SDK.
/// `None` if malformed.
pub fn decode_consistency_item(item: &str) -> Option<(Hash, Path)> {
    let (head, proof) = item.split_once(',')?;
    let (_, node_hex) = head.split_once(':')?;
    Some((parse_hash(node_hex)?, decode_path(proof)?))
}

/// Folds a decoded path over `node`, leaf (or node) upward.
fn fold_path(node: &Hash, path: &[(Side, Hash)]) -> Hash {
    path.iter().fold(*node, |acc, (side, sibling)| match side {
        Side::L => hash_pair(sibling, &acc),
        Side::R => hash_pair(&acc, sibling),
    })
}

/// Folds a membership proof string over `node`; `None` if malformed.
fn fold_proof(node: &Hash, proof: &str) -> Option<Hash> {
    decode_path(proof).map(|p| fold_path(node, &p))
}

/// SDK `verify_membership_proof`: folds `proof` from `leaf` and compares with `root`.
/// Malformed proofs give `false`; never panics.
pub fn verify_membership(leaf: &Hash, root: &Hash, proof: &str) -> bool {
    fold_proof(leaf, proof).is_some_and(|r| r == *root)
}

/// SDK `verify_consistency_proof`: the old subtree nodes, folded smallest first (later items
/// on the left), must give `prev_root`, and every node must be a member of `new_root`.
/// Empty or malformed proofs give `false`; never panics.
pub fn verify_consistency(new_root: &Hash, prev_root: &Hash, items: &[String]) -> bool {
    let Some(parsed) = items.iter().map(|item| decode_consistency_item(item)).collect::<Option<Vec<_>>>() else {
        return false;
    };
    let Some(((first, _), rest)) = parsed.split_first() else {
        return false;
    };
    let acc = rest.iter().fold(*first, |acc, (node, _)| hash_pair(node, &acc));
    acc == *prev_root && parsed.iter().all(|(node, path)| fold_path(node, path) == *new_root)
}

/// An append-only Merkle tree that keeps every complete aligned subtree hash:
/// `levels[k][j] = MTH(D[j·2^k, (j+1)·2^k))`, so `levels[0]` holds the leaves and level `k` has
/// `len >> k` entries (about 2× the leaves in total). Roots, paths and consistency proofs for any
/// prefix size need O(log n) hashing and never touch all leaves.
///
/// Every method equals the corresponding reference free function over `leaves[..size]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    levels: Vec<Vec<Hash>>,
}

impl CompactTree {
    pub fn new() -> Self {
        Self { levels: Vec::new() }
    }

    /// Rebuilds a tree from its leaves (e.g. when loading from storage).
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for leaf in leaves {
            t.push(leaf);
        }
        t
    }

    /// Appends a leaf; amortised O(1) hashing.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(node);
            let len = row.len();
            if len % 2 == 1 {
                break;
            }
            node = hash_pair(&row[len - 2], &row[len - 1]);
            level += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn leaf(&self, i: usize) -> Option<Hash> {
        self.levels.first()?.get(i).copied()
    }

    /// Bytes of hashes allocated (every level, with spare capacity).
    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 32).sum::<usize>() + self.levels.capacity() * size_of::<Vec<Hash>>()
    }

    /// All leaves in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// `MTH(D[0:size])`; `None` if `size == 0` or `size > len`.
    pub fn root(&self, size: usize) -> Option<Hash> {
        if size == 0 || size > self.len() { None } else { Some(self.range_hash(0, size)) }
    }

    /// Stored hash of the complete aligned subtree `[s, e)`, if it is one.
    fn stored(&self, s: usize, e: usize) -> Option<Hash> {
        let size = e.checked_sub(s)?;
        if !size.is_power_of_two() || !s.is_multiple_of(size) {
            return None;
        }
        let level = size.trailing_zeros() as usize;
        self.levels.get(level)?.get(s >> level).copied()
    }

    /// `MTH(D[s:e])`. O(log n) hashing for the ranges that tree shapes produce (`s` a multiple
    /// of the power of two ≥ `e - s`: every range used by paths, node paths and subtrees);
    /// correct but slower for any other range. Returns the all-zero hash if `s >= e` or
    /// `e > len` (no such range exists).
    pub fn range_hash(&self, s: usize, e: usize) -> Hash {
        if s >= e || e > self.len() {
            return [0; 32];
        }
        if let Some(h) = self.stored(s, e) {
            return h;
        }
        let k = split_point(e - s);
        hash_pair(&self.range_hash(s, s + k), &self.range_hash(s + k, e))
    }

    /// Walks from the node `[s, e)` of the tree of `size` leaves up to the root, collecting
    /// siblings leaf upward. Empty if `[s, e)` is not a node of that tree or `size > len`.
    fn walk(&self, s: usize, e: usize, size: usize) -> Path {
        if s >= e || e > size || size > self.len() {
            return Vec::new();
        }
        let mut top_down = Vec::new();
        let (mut a, mut b) = (0, size);
        while (a, b) != (s, e) {
            let k = split_point(b - a);
            if k == 0 {
                return Vec::new(); // reached a leaf without meeting [s, e)
            }
            let mid = a + k;
            if e <= mid {
                top_down.push((Side::R, self.range_hash(mid, b)));
                b = mid;
            } else if s >= mid {
                top_down.push((Side::L, self.range_hash(a, mid)));
                a = mid;
            } else {
                return Vec::new(); // straddles the split: not a node
            }
        }
        top_down.reverse();
        top_down
    }

    /// `PATH(i, D[0:size])`; empty if `i >= size` or `size > len`.
    pub fn path(&self, i: usize, size: usize) -> Path {
        self.walk(i, i.saturating_add(1), size)
    }

    /// `NODE_PATH(s, e, D[0:size])`; empty if `[s, e)` is not a node of the tree of `size`
    /// leaves, if it is the root, or if `size > len`.
    pub fn node_path(&self, s: usize, e: usize, size: usize) -> Path {
        self.walk(s, e, size)
    }

    /// `CONSISTENCY(m, D[0:n])`; empty unless `0 < m < n <= len`.
    pub fn consistency(&self, m: usize, n: usize) -> Vec<String> {
        if m == 0 || m >= n || n > self.len() {
            return Vec::new();
        }
        subtrees(m)
            .into_iter()
            .rev()
            .map(|(s, e)| consistency_item(&self.range_hash(s, e), &self.node_path(s, e, n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(hex: &str) -> Hash {
        parse_hash(hex).expect("valid test hash")
    }

    fn sha(bytes: &[u8]) -> Hash {
        Sha256::digest(bytes).into()
    }

    /// Deterministic distinct leaves.
    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| sha(&(i as u64).to_le_bytes())).collect()
    }

    fn x(h: &Hash) -> String {
        hex::encode(h)
    }

    // ---- Vector B (§15.2) ----
    const B: [&str; 5] = [
        "66e5918c7a42791f5cb1d676d9d7129d2555ae682f97c84489e5b57e46336c7a",
        "ef20458a78a9e18aa4041139480de9b475d3b6abbb093a82c636dba60f11ae1d",
        "5d2fafb0d8b8afbf68ea12d3a9e3e749a36d7454b555bd24e47deff150ba5337",
        "2dafed0106af42ce1318c5c24953309cb909006cdb3f739a94a1901636362eeb",
        "a838d1fe593362c7610e210ad6df3a622d1aa0986af864a157d6294d3d307186",
    ];
    const B_ROOT2: &str = "7ea698d6e9ab9e720f674ef1388495e201ac221bdb76ddf2798ed64329bd3bad";
    const B_ROOT3: &str = "83c6b927549cf99769b58dcc5b128a0a677dd80dc0083b0de3b259d91a7c198a";
    const B_H23: &str = "2d4a43c63af70c388c40fbb31cb1252197b3834bc711f8e9e091c84c06097c73";
    const B_ROOT4: &str = "69efe5d595a4e30bf0c83fc27d0106d9772bbc1be34b67cafb82721129ad69e0";

    fn vector_b_leaves() -> Vec<Hash> {
        B.iter().map(|s| h(s)).collect()
    }

    #[test]
    fn vector_b_roots() {
        let d = vector_b_leaves();
        let t = CompactTree::from_leaves(d.iter().copied());
        assert_eq!(mth(&d[..1]), Some(d[0]));
        assert_eq!(mth(&d[..2]), Some(h(B_ROOT2)));
        assert_eq!(mth(&d[..3]), Some(h(B_ROOT3)));
        assert_eq!(mth(&d[..4]), Some(h(B_ROOT4)));
        assert_eq!(hash_pair(&d[0], &d[1]), h(B_ROOT2));
        assert_eq!(hash_pair(&d[2], &d[3]), h(B_H23));
        assert_eq!(t.root(1), Some(d[0]));
        assert_eq!(t.root(2), Some(h(B_ROOT2)));
        assert_eq!(t.root(3), Some(h(B_ROOT3)));
        assert_eq!(t.root(4), Some(h(B_ROOT4)));
        assert_eq!(t.range_hash(2, 4), h(B_H23));
    }

    #[test]
    fn vector_b_memberships() {
        let d = vector_b_leaves();
        let t = CompactTree::from_leaves(d.iter().copied());
        let expected = [format!("r:{},r:{}", B[1], B[2]), format!("l:{},r:{}", B[0], B[2]), format!("l:{B_ROOT2}")];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(&encode_path(&path(i, &d[..3])), e);
            assert_eq!(&encode_path(&t.path(i, 3)), e);
            assert!(verify_membership(&d[i], &h(B_ROOT3), e));
        }
        assert_eq!(encode_path(&path(0, &d[..1])), "");
        assert!(verify_membership(&d[0], &d[0], ""));
    }

    #[test]
    fn vector_b_consistency() {
        let d = vector_b_leaves();
        let t = CompactTree::from_leaves(d.iter().copied());
        let cases: [(usize, usize, Vec<String>); 4] = [
            (1, 2, vec![format!("x:{},r:{}", B[0], B[1])]),
            (2, 3, vec![format!("x:{B_ROOT2},r:{}", B[2])]),
            (3, 4, vec![format!("x:{},r:{},l:{B_ROOT2}", B[2], B[3]), format!("x:{B_ROOT2},r:{B_H23}")]),
            (1, 4, vec![format!("x:{},r:{},r:{B_H23}", B[0], B[1])]),
        ];
        for (m, n, expected) in cases {
            assert_eq!(consistency(m, &d[..n]), expected, "{m}->{n}");
            assert_eq!(t.consistency(m, n), expected, "{m}->{n}");
            let (old, new) = (mth(&d[..m]).expect("m>0"), mth(&d[..n]).expect("n>0"));
            assert!(verify_consistency(&new, &old, &expected));
        }
    }

    // ---- Vector C (§15.3): two levels, buffer size 3 ----
    #[test]
    fn vector_c_two_levels() {
        let d = vector_b_leaves();
        let c0_hex = "83c6b927549cf99769b58dcc5b128a0a677dd80dc0083b0de3b259d91a7c198a";
        let b1_hex = "377a3e2972b4238de878d1b1ec2f7fcc64c526ae8f6e20b36c884457b71ca3bb";
        let unpub_hex = "482cd45eae7afc8c33b52abacf5b8419ea6db8f0780404ba9187694dc41a8595";
        let unpub_after_e3_hex = "20f7d4b43dd9efc088c1d9e46993821b01ac0d6b9017533ef88b1e8e3dbc56e6";

        let buf0 = CompactTree::from_leaves(d[..3].iter().copied());
        let buf1 = CompactTree::from_leaves(d[3..5].iter().copied());
        let c0 = buf0.root(3).expect("sealed");
        assert_eq!(x(&c0), c0_hex);
        let cold = CompactTree::from_leaves([c0]);
        assert_eq!(cold.root(1), Some(c0));

        // Published e1: buffer path ++ cold path (empty for size 1).
        let mut p = buf0.path(1, 3);
        p.extend(cold.path(0, 1));
        let enc = encode_path(&p);
        assert_eq!(enc, format!("l:{},r:{}", B[0], B[2]));
        assert!(verify_membership(&d[1], &c0, &enc));
        for (i, leaf) in d[..3].iter().enumerate() {
            let mut p = buf0.path(i, 3);
            p.extend(cold.path(0, 1));
            assert!(verify_membership(leaf, &c0, &encode_path(&p)));
        }

        // Open buffer 1 = [e3, e4]; unpublished tree U = C ++ [MTH(B1)].
        let b1 = buf1.root(2).expect("open");
        assert_eq!(x(&b1), b1_hex);
        let u = CompactTree::from_leaves([c0, b1]);
        assert_eq!(x(&u.root(2).expect("U")), unpub_hex);
        let mut p = buf1.path(1, 2);
        p.extend(u.path(1, 2));
        let enc = encode_path(&p);
        assert_eq!(enc, format!("l:{},l:{c0_hex}", B[3]));
        assert!(verify_membership(&d[4], &h(unpub_hex), &enc));
        let mut p = buf1.path(0, 2);
        p.extend(u.path(1, 2));
        assert!(verify_membership(&d[3], &h(unpub_hex), &encode_path(&p)));

        // Unpublished root right after e3: U = [c0, MTH([h3])].
        let u_e3 = CompactTree::from_leaves([c0, d[3]]);
        assert_eq!(x(&u_e3.root(2).expect("U")), unpub_after_e3_hex);

        // v1/log consistency (after e3 -> after e4), built as in §10.4 with (n0, m0) = (1, 1).
        let (n0, m0) = (1usize, 1usize);
        let mut items = Vec::new();
        for (s, e) in subtrees(m0).into_iter().rev() {
            let mut p = buf1.node_path(s, e, buf1.len());
            p.extend(u.path(n0, u.len()));
            items.push(format!("x:{},{}", x(&buf1.range_hash(s, e)), encode_path(&p)));
        }
        for (s, e) in subtrees(n0).into_iter().rev() {
            items.push(format!("x:{},{}", x(&u.range_hash(s, e)), encode_path(&u.node_path(s, e, u.len()))));
        }
        assert_eq!(items, vec![format!("x:{},r:{},l:{c0_hex}", B[3], B[4]), format!("x:{c0_hex},r:{b1_hex}"),]);
        assert!(verify_consistency(&h(unpub_hex), &h(unpub_after_e3_hex), &items));
        assert!(!verify_consistency(&h(unpub_after_e3_hex), &h(unpub_hex), &items));
    }

    // ---- Vector F (§15.4) ----
    fn vector_f_leaves() -> Vec<Hash> {
        let inputs: [Vec<u8>; 8] = [
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..=0x57).collect(),
            (0x60..=0x6f).collect(),
        ];
        inputs.iter().map(|b| sha(b)).collect()
    }

    #[test]
    fn vector_f_roots_and_proofs() {
        let roots = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "e34d11e6492b90493922a430f217cd993ad07e705b5dceee604ce2201c0b3013",
            "d4a3f6bb027c7509e59a9518b50cdcd88faa2683d51e75a7a773cc62f480b3b5",
            "2a995b6a379616a87bfab80c662f3cd569beb40627d132a1b6b1a97cf29b5b09",
            "b348180e8eae5271aa28f3079f41db2668d0fc1608787e21fe31bf10928185f5",
            "3aeaeefb5fc78c0598c2e1380f3e46e53f697185d31fbe3348e700a5e9cd5324",
            "ec3eeb7b484889f72f880461793794d848de1876c5438069b4f1d4b47a1fd13a",
            "03b3e0e5b23746036c9c7185c1fc12bc6f8ff41cc2b97b24fb451f2cc291d2b4",
        ];
        let d = vector_f_leaves();
        let t = CompactTree::from_leaves(d.iter().copied());
        for (i, r) in roots.iter().enumerate() {
            assert_eq!(mth(&d[..=i]).map(|h| x(&h)).as_deref(), Some(*r), "size {}", i + 1);
            assert_eq!(t.root(i + 1).map(|h| x(&h)).as_deref(), Some(*r), "size {}", i + 1);
        }
        // RFC 6962-hashed roots are NOT this dialect (§15.5).
        assert!(!x(&t.root(1).expect("root")).starts_with("6e340b9c"));
        assert!(!x(&t.root(8).expect("root")).starts_with("5dc9da79"));

        let m5 = "l:938db8c9f82c8cb58d3f3ef4fd250036a48d26a712753d2fde5abd03a85cabf4,r:86912194063de377f14ee690d64e798822ea3a58d224d8a88a1c255774bc6e5f,l:2a995b6a379616a87bfab80c662f3cd569beb40627d132a1b6b1a97cf29b5b09";
        assert_eq!(encode_path(&path(5, &d[..7])), m5);
        assert_eq!(encode_path(&t.path(5, 7)), m5);
        assert!(verify_membership(&d[5], &h(roots[6]), m5));

        let c48 = vec![
            "x:2a995b6a379616a87bfab80c662f3cd569beb40627d132a1b6b1a97cf29b5b09,r:f6e9228b22b11cbaabac6d469bcc978bc2add8d2bdbbfc71bca249073fb6ba5f".to_string(),
        ];
        assert_eq!(consistency(4, &d), c48);
        assert_eq!(t.consistency(4, 8), c48);
        assert!(verify_consistency(&h(roots[7]), &h(roots[3]), &c48));

        // All memberships and all consistency proofs m -> n, 1 <= m < n <= 8.
        for n in 1..=8 {
            for (i, leaf) in d[..n].iter().enumerate() {
                assert!(verify_membership(leaf, &h(roots[n - 1]), &encode_path(&t.path(i, n))));
            }
            for m in 1..n {
                let c = t.consistency(m, n);
                assert!(verify_consistency(&h(roots[n - 1]), &h(roots[m - 1]), &c), "{m}->{n}");
            }
        }
    }

    // ---- Production data (§15.6) ----
    const PROD_PROOF: &str = "l:c0bfb0fd1159f7f40c8b0e5f1ec28ebf3c7c7bbe41c8b9e62ee5f3238b1c51fa,l:edc77dec9297653dddf55e833ec9b415f2aa32d77a231408443a7d642504f9bb,l:17d7f0d7483acfdddadaef8941fe68af809d9be6c560a9277aad2c35fe958606,l:a9e2809545d2e6a6a82ec636fd2c29bc84e3c063497f3f62356bf2c9fe7fcd2e,l:cb0df5395b30583e928a2d779b101da997b8a25d2a162375ada3bdc8f6621f9c,l:26345b33ead978bf870990c8b4c2d116f4ed2c6de0802a4906d97c4504937824,l:25cdb02dd291cf24068996c32b5848f6fa637327ecd94e7cc7f07562b0a997ce";
    const PROD_LEAF: &str = "afa77464cad6e1b34e23d4847106081577f0b78f9c407ab501d16c09b23be202";
    const PROD_ROOT31: &str = "58e83c3bed473694e34d714a5c71d78be3d2e6741fef6120c0108564a8c3519d";
    const PROD_ROOT30: &str = "55a47db1b2f74c13f34cbe461bd4a589a8c38a49f8c777f7ecceac751868c63d";
    const PROD_R: [&str; 4] = [
        "20bf7a8d010354fa3eacaf5d53d6b33a87ab23a7e6b4e1ac4cb712d5fca2a54a",
        "7f50966e703039f135755e41afe8cb557941ff1431fa0c09d49d1ff2d7d906f3",
        "51de5a887c3e09610693ac0514ae3ef53166bf7d1a774078dce1390c6228f940",
        "029e187f6a9c5f51e6d44b40194de81e80c6288f08e3e00f59ea3b81fc092991",
    ];

    #[test]
    fn production_membership() {
        assert!(verify_membership(&h(PROD_LEAF), &h(PROD_ROOT31), PROD_PROOF));
        // Upper-case hex is accepted too (the SDK uses unhexlify).
        assert!(verify_membership(&h(PROD_LEAF), &h(PROD_ROOT31), &PROD_PROOF.to_uppercase().replace("L:", "l:")));
        // Hot prefix (3 hops) leads to the buffer root R_1 = new leaf 30; the cold suffix is
        // PATH(30, 31) = four left siblings.
        let items: Vec<&str> = PROD_PROOF.split(',').collect();
        let hot = items[..3].join(",");
        let cold = items[3..].join(",");
        let r1 = fold_proof(&h(PROD_LEAF), &hot).expect("well-formed");
        assert_eq!(x(&r1), PROD_R[0]);
        assert!(verify_membership(&r1, &h(PROD_ROOT31), &cold));
        assert_eq!(cold.matches("l:").count(), 4);
    }

    #[test]
    fn production_consistency_fold() {
        // m[k] = hash of the k-th membership item (1-based).
        let m: Vec<&str> = PROD_PROOF.split(',').map(|it| &it[2..]).collect();
        let mk = |k: usize| m[k - 1];
        let items: Vec<String> = (1..=4)
            .map(|i| {
                let mut s = format!("x:{},r:{}", mk(3 + i), PROD_R[i - 1]);
                for k in (4 + i)..=7 {
                    s.push_str(&format!(",l:{}", mk(k)));
                }
                s
            })
            .collect();
        assert_eq!(items.len(), 4);
        assert!(verify_consistency(&h(PROD_ROOT31), &h(PROD_ROOT30), &items));
        // The implied size-30 root is the fold of the items' nodes.
        let nodes: Vec<Hash> = (4..=7).map(|k| h(mk(k))).collect();
        let fold = nodes[1..].iter().fold(nodes[0], |acc, n| hash_pair(n, &acc));
        assert_eq!(x(&fold), PROD_ROOT30);
        // Subtree shape matches §15.6: [28,30), [24,28), [16,24), [0,16).
        let mut shape = subtrees(30);
        shape.reverse();
        assert_eq!(shape, vec![(28, 30), (24, 28), (16, 24), (0, 16)]);
        assert!(!verify_consistency(&h(PROD_ROOT31), &h(PROD_ROOT31), &items));
    }

    // ---- Structure ----
    #[test]
    fn subtrees_decomposition() {
        assert_eq!(subtrees(0), vec![]);
        assert_eq!(subtrees(1), vec![(0, 1)]);
        assert_eq!(subtrees(6), vec![(0, 4), (4, 6)]);
        assert_eq!(subtrees(7), vec![(0, 4), (4, 6), (6, 7)]);
        assert_eq!(subtrees(8), vec![(0, 8)]);
        assert_eq!(subtrees(31), vec![(0, 16), (16, 24), (24, 28), (28, 30), (30, 31)]);
        for m in 1..200 {
            let st = subtrees(m);
            assert_eq!(st.len(), m.count_ones() as usize);
            assert_eq!(st.first().map(|p| p.0), Some(0));
            assert_eq!(st.last().map(|p| p.1), Some(m));
            for w in st.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert!(w[0].1 - w[0].0 > w[1].1 - w[1].0);
            }
        }
    }

    #[test]
    fn split_point_values() {
        assert_eq!(split_point(0), 0);
        assert_eq!(split_point(1), 0);
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(usize::MAX), 1 << (usize::BITS - 1));
    }

    #[test]
    fn compact_tree_levels_memory() {
        let t = CompactTree::from_leaves(leaves(100));
        assert_eq!(t.len(), 100);
        for (k, row) in t.levels.iter().enumerate() {
            assert_eq!(row.len(), 100 >> k);
        }
        let total: usize = t.levels.iter().map(Vec::len).sum();
        assert!(total < 200);
        assert_eq!(t.leaves(), leaves(100).as_slice());
    }

    /// CompactTree equals the reference for every size ≤ 70, every leaf, every node, every
    /// consistency pair; every generated proof verifies.
    #[test]
    fn compact_tree_matches_reference() {
        const N: usize = 70;
        let d = leaves(N);
        let mut t = CompactTree::new();
        assert!(t.is_empty());
        assert_eq!(t.root(0), None);
        assert_eq!(mth(&[]), None);
        for n in 1..=N {
            t.push(d[n - 1]);
            assert_eq!(t.len(), n);
            assert!(!t.is_empty());
            assert_eq!(t.leaf(n - 1), Some(d[n - 1]));
            assert_eq!(t.leaf(n), None);
        }
        for n in 1..=N {
            let prefix = &d[..n];
            let root = mth(prefix).expect("non-empty");
            assert_eq!(t.root(n), Some(root), "root {n}");
            for i in 0..n {
                let p = path(i, prefix);
                assert_eq!(t.path(i, n), p, "path {i} in {n}");
                assert!(p.len() <= usize::BITS as usize);
                assert!(verify_membership(&d[i], &root, &encode_path(&p)));
                if n > 1 {
                    let other = d[(i + 1) % n];
                    assert!(!verify_membership(&other, &root, &encode_path(&p)));
                }
            }
            assert!(t.path(n, n).is_empty());
            for m in 1..n {
                for &(s, e) in &subtrees(m) {
                    let np = node_path(s, e, prefix);
                    assert!(!np.is_empty());
                    assert_eq!(t.node_path(s, e, n), np, "node [{s},{e}) in {n}");
                    assert_eq!(t.range_hash(s, e), mth(&d[s..e]).expect("non-empty"));
                    assert!(verify_membership(&t.range_hash(s, e), &root, &encode_path(&np)));
                }
                let c = consistency(m, prefix);
                assert_eq!(c.len(), m.count_ones() as usize);
                assert_eq!(t.consistency(m, n), c, "consistency {m}->{n}");
                let old = mth(&d[..m]).expect("non-empty");
                assert!(verify_consistency(&root, &old, &c), "{m}->{n}");
                assert!(!verify_consistency(&old, &root, &c));
                if m + 1 < n {
                    let wrong_old = mth(&d[..m + 1]).expect("non-empty");
                    assert!(!verify_consistency(&root, &wrong_old, &c));
                }
            }
            assert!(consistency(0, prefix).is_empty());
            assert!(consistency(n, prefix).is_empty());
            assert!(t.consistency(n, n).is_empty());
            assert!(t.consistency(0, n).is_empty());
        }
        assert!(t.consistency(1, N + 1).is_empty());
        assert!(t.path(0, N + 1).is_empty());
        assert_eq!(t.root(N + 1), None);
    }

    /// Every aligned node of every tree shape: reference and compact node paths agree, and
    /// arbitrary (even unaligned) ranges hash like the reference.
    #[test]
    fn node_paths_and_ranges_all_nodes() {
        let d = leaves(40);
        let t = CompactTree::from_leaves(d.iter().copied());
        for n in 1..=40 {
            for s in 0..n {
                for e in s + 1..=n {
                    assert_eq!(t.range_hash(s, e), mth(&d[s..e]).expect("non-empty"));
                    let reference = node_path(s, e, &d[..n]);
                    assert_eq!(t.node_path(s, e, n), reference, "[{s},{e}) in {n}");
                    if !reference.is_empty() {
                        let node = mth(&d[s..e]).expect("non-empty");
                        let root = mth(&d[..n]).expect("non-empty");
                        assert!(verify_membership(&node, &root, &encode_path(&reference)));
                    }
                }
            }
        }
        // Non-nodes give empty paths.
        assert!(node_path(1, 3, &d[..4]).is_empty());
        assert!(t.node_path(1, 3, 4).is_empty());
        assert!(node_path(0, 3, &d[..8]).is_empty());
        assert!(t.node_path(0, 3, 8).is_empty());
        assert_eq!(t.range_hash(3, 3), [0; 32]);
        assert_eq!(t.range_hash(0, 41), [0; 32]);
    }

    #[test]
    fn large_tree_roots_and_proofs() {
        let n = 5000;
        let d = leaves(n);
        let t = CompactTree::from_leaves(d.iter().copied());
        for size in [1, 2, 3, 1023, 1024, 1025, 4095, 4096, 4097, 4999, 5000] {
            let root = mth(&d[..size]).expect("non-empty");
            assert_eq!(t.root(size), Some(root));
            for i in [0, size / 2, size - 1] {
                assert_eq!(t.path(i, size), path(i, &d[..size]));
                assert!(verify_membership(&d[i], &root, &encode_path(&t.path(i, size))));
            }
            for m in [1, size / 3, size - 1] {
                if 0 < m && m < size {
                    let c = t.consistency(m, size);
                    assert_eq!(c, consistency(m, &d[..size]));
                    assert!(verify_consistency(&root, &t.root(m).expect("m>0"), &c));
                }
            }
        }
    }

    // ---- Tampering and malformed input ----
    fn flip_hex_char(s: &str, idx: usize) -> String {
        let mut b = s.as_bytes().to_vec();
        b[idx] = if b[idx] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn membership_tampering() {
        let d = leaves(13);
        let t = CompactTree::from_leaves(d.iter().copied());
        let root = t.root(13).expect("root");
        for (i, &leaf) in d.iter().enumerate() {
            let p = t.path(i, 13);
            let enc = encode_path(&p);
            assert!(verify_membership(&leaf, &root, &enc));
            // Flip a bit in every position of the proof's hex.
            for (pos, c) in enc.char_indices() {
                if c.is_ascii_hexdigit() {
                    assert!(!verify_membership(&leaf, &root, &flip_hex_char(&enc, pos)));
                }
            }
            // Flip a bit in the leaf and in the root.
            for byte in [0, 17, 31] {
                for bit in 0..8 {
                    let mut bad_leaf = leaf;
                    bad_leaf[byte] ^= 1 << bit;
                    assert!(!verify_membership(&bad_leaf, &root, &enc));
                    let mut bad_root = root;
                    bad_root[byte] ^= 1 << bit;
                    assert!(!verify_membership(&leaf, &bad_root, &enc));
                }
            }
            // Drop any item; swap any side; reverse the order; duplicate an item.
            for j in 0..p.len() {
                let mut q = p.clone();
                q.remove(j);
                assert!(!verify_membership(&leaf, &root, &encode_path(&q)));
                let mut q = p.clone();
                q[j].0 = if q[j].0 == Side::L { Side::R } else { Side::L };
                assert!(!verify_membership(&leaf, &root, &encode_path(&q)));
                let mut q = p.clone();
                q.insert(j, p[j]);
                assert!(!verify_membership(&leaf, &root, &encode_path(&q)));
            }
            if p.len() > 1 {
                let mut q = p.clone();
                q.reverse();
                if q != p {
                    assert!(!verify_membership(&leaf, &root, &encode_path(&q)));
                }
            }
            assert!(!verify_membership(&leaf, &root, ""));
        }
        // Any label other than "l" means right, as in the SDK.
        let p = t.path(0, 13);
        assert!(p.iter().all(|(s, _)| *s == Side::R));
        let relabelled = encode_path(&p).replace("r:", "right:");
        assert!(verify_membership(&d[0], &root, &relabelled));
    }

    #[test]
    fn consistency_tampering() {
        let d = leaves(23);
        let t = CompactTree::from_leaves(d.iter().copied());
        let new = t.root(23).expect("root");
        for m in [1, 5, 7, 16, 22] {
            let old = t.root(m).expect("root");
            let c = t.consistency(m, 23);
            assert!(verify_consistency(&new, &old, &c));
            for j in 0..c.len() {
                // Flip every hex character of item j (labels x/l/r are never hex digits).
                for (pos, ch) in c[j].char_indices() {
                    if ch.is_ascii_hexdigit() {
                        let mut cc = c.clone();
                        cc[j] = flip_hex_char(&c[j], pos);
                        assert!(!verify_consistency(&new, &old, &cc), "m={m} j={j} pos={pos}");
                    }
                }
                // Drop item j.
                let mut cc = c.clone();
                cc.remove(j);
                assert!(!verify_consistency(&new, &old, &cc));
                // Swap sides in item j's path.
                let mut cc = c.clone();
                cc[j] = c[j].replace(",l:", ",T:").replace(",r:", ",l:").replace(",T:", ",r:");
                assert!(!verify_consistency(&new, &old, &cc));
                // Remove item j's path.
                let mut cc = c.clone();
                cc[j] = c[j].split(',').next().unwrap_or_default().to_string();
                assert!(!verify_consistency(&new, &old, &cc));
            }
            if c.len() > 1 {
                let mut cc = c.clone();
                cc.reverse();
                assert!(!verify_consistency(&new, &old, &cc));
            }
            let mut flipped_root = new;
            flipped_root[5] ^= 0x10;
            assert!(!verify_consistency(&flipped_root, &old, &c));
            let mut flipped_old = old;
            flipped_old[31] ^= 1;
            assert!(!verify_consistency(&new, &flipped_old, &c));
        }
        assert!(!verify_consistency(&new, &new, &[]));
    }

    #[test]
    fn malformed_inputs_never_panic() {
        let d = leaves(3);
        let root = mth(&d).expect("root");
        let good = encode_path(&path(0, &d));
        let hex64 = "ab".repeat(32);
        let bad_proofs = [
            ",".to_string(),
            ",,".to_string(),
            format!("{good},"),
            format!(",{good}"),
            "l".to_string(),
            "l:".to_string(),
            ":".to_string(),
            "l:zz".to_string(),
            format!("l:{}", &hex64[..63]),
            format!("l:{hex64}0"),
            format!("l:{}", "é".repeat(32)),
            format!("l:{}", "g".repeat(64)),
            format!("l:{hex64}:{hex64}"),
            format!("l {hex64}"),
            format!("l: {}", &hex64[1..]),
            "\u{0}".to_string(),
            "😀:😀,😀".to_string(),
            good.replace(',', ";"),
        ];
        for p in &bad_proofs {
            assert!(!verify_membership(&d[0], &root, p), "{p:?}");
        }
        let new = root;
        let old = d[0];
        let item = format!("x:{}", x(&old));
        let bad_items: Vec<Vec<String>> = vec![
            vec![],
            vec![String::new()],
            vec![",".to_string()],
            vec![item.clone()],
            vec![format!("{item}{}", encode_path(&path(0, &d)))],
            vec![format!("x{},{}", x(&old), encode_path(&path(0, &d)))],
            vec![format!("x:{},{}", &x(&old)[1..], encode_path(&path(0, &d)))],
            vec![format!("x:é{},{}", &x(&old)[2..], encode_path(&path(0, &d)))],
            vec![format!("{item},l:")],
            vec![format!("{item},{}", encode_path(&path(0, &d))), "junk".to_string()],
        ];
        for items in &bad_items {
            assert!(!verify_consistency(&new, &old, items), "{items:?}");
        }
        // The label before ':' is ignored; a well-formed item with another label verifies.
        let c = consistency(1, &d);
        assert!(verify_consistency(&new, &old, &c));
        let relabelled: Vec<String> = c.iter().map(|s| s.replacen("x:", "anything:", 1)).collect();
        assert!(verify_consistency(&new, &old, &relabelled));
    }

    #[test]
    fn parse_hash_strict() {
        let hx = "00ff".repeat(16);
        assert_eq!(parse_hash(&hx).map(|h| x(&h)), Some(hx.clone()));
        assert!(parse_hash(&hx.to_uppercase()).is_some());
        assert!(parse_hash("").is_none());
        assert!(parse_hash(&hx[..62]).is_none());
        assert!(parse_hash(&format!("{hx}00")).is_none());
        assert!(parse_hash(&format!("{}zz", &hx[..62])).is_none());
        assert!(parse_hash(&format!("{}é", &hx[..62])).is_none());
        assert!(parse_hash(&format!(" {}", &hx[..63])).is_none());
    }

    #[test]
    fn encode_path_format() {
        assert_eq!(encode_path(&[]), "");
        let a = [0xABu8; 32];
        let b = [0x01u8; 32];
        assert_eq!(encode_path(&[(Side::L, a), (Side::R, b)]), format!("l:{},r:{}", "ab".repeat(32), "01".repeat(32)));
    }

    #[test]
    fn decode_path_inverts_encode_path() {
        let d = leaves(7);
        for i in 0..7 {
            let p = path(i, &d);
            let text = encode_path(&p);
            assert_eq!(decode_path(&text), Some(p.clone()));
            assert_eq!(encode_path(&decode_path(&text).expect("decodes")), text);
            // Uppercase hex and other right-hand labels decode to the same path.
            let loud = text.to_uppercase().replace("L:", "l:");
            assert_eq!(decode_path(&loud), Some(p.clone()));
            assert_eq!(decode_path(&text.replace("r:", "right:")), Some(p));
        }
        assert_eq!(decode_path(""), Some(Vec::new()));
        for bad in [",", "l:", "l:00", &format!("l:{}:", "00".repeat(32)), &format!("l:{},", "00".repeat(32))] {
            assert_eq!(decode_path(bad), None, "{bad:?}");
        }
        let c = consistency(3, &d);
        let first = decode_consistency_item(&c[0]).expect("decodes");
        assert_eq!(format!("x:{},{}", x(&first.0), encode_path(&first.1)), c[0]);
        assert_eq!(decode_consistency_item(&format!("x:{}", x(&d[0]))), None);
    }
}
