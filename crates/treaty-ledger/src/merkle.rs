//! The ledger's Merkle tree: RFC 9162 hashing, proofs and their checks, as
//! pure functions over hashes.
//!
//! Leaf `i` (0-based) is record `seq = i + 1`; its hash is
//! `SHA-256(0x00 || seq as 8 big-endian bytes || kind code || payload)`
//! and an interior node is `SHA-256(0x01 || left || right)`, exactly as
//! RFC 9162 section 2.1.1 (and RFC 6962 before it, Go's `sumdb/tlog`, CT
//! and Sigstore) hash them, so tools that are not Treaty's can check a
//! proof. The tree over the first `n` records has size `n`, the seq of the
//! head.
//!
//! Storage: every *complete* subtree's hash is kept once, at the index Go's
//! `tlog.StoredHashIndex` gives it, which grows with every append (so on
//! SQLite the rows land at the end of the table) and holds `2n - popcount(n)`
//! hashes for `n` records. The writer carries the *frontier* (the roots of
//! the complete subtrees the size splits into, largest first, at most 64) in
//! the head row, so appending needs no read of stored nodes, and a proof
//! needs only the O(log n) complete subtrees its path is made of.
//!
//! Why by hand: `rs_merkle` pads and hashes differently from RFC 9162;
//! `ct-merkle` keeps the whole tree in memory; Go-port crates read stored
//! hashes through a synchronous callback, which an async store cannot
//! serve. The algorithms below follow RFC 9162 section 2.1 step by step and
//! are tested against the published vectors (`tests` below).
//!
//! This module never reads or writes the store.

use sha2::{Digest, Sha256};

use crate::record::Kind;

pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The leaf bytes of a record: `seq (8 bytes, big-endian) || kind code ||
/// payload`. Fixed-width fields in front of the payload keep two different
/// records from ever having the same leaf bytes.
pub fn record_leaf_bytes(seq: u64, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(9 + payload.len());
    b.extend_from_slice(&seq.to_be_bytes());
    b.push(kind.code());
    b.extend_from_slice(payload);
    b
}

/// The leaf hash of a record, without copying its payload.
pub fn record_leaf(seq: u64, kind: Kind, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(seq.to_be_bytes());
    h.update([kind.code()]);
    h.update(payload);
    h.finalize().into()
}

/// Where the hash of the complete subtree at `level` (0: leaves) and
/// position `n` within that level is stored (Go's `tlog.StoredHashIndex`).
pub fn stored_index(level: u32, n: u64) -> u64 {
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut i = 0u64;
    while n > 0 {
        i += n;
        n >>= 1;
    }
    i + u64::from(level)
}

/// The largest power of two smaller than `n` (`n >= 2`): RFC 9162's split.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The right edge of the tree: the roots of the complete subtrees the tree
/// of `size` leaves splits into, largest (leftmost) first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads a stored frontier: `size` and its hashes concatenated. `None`
    /// when the number of hashes is not the number of one bits in `size`.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Frontier> {
        if !bytes.len().is_multiple_of(32) || bytes.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let hashes = bytes
            .chunks_exact(32)
            .map(|c| c.try_into().ok())
            .collect::<Option<Vec<Hash>>>()?;
        Some(Frontier { size, hashes })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// Appends a leaf; `stored` receives each complete subtree the append
    /// finishes as `(stored index, hash)`, the leaf first.
    pub fn push(&mut self, leaf: Hash, stored: &mut impl FnMut(u64, Hash)) {
        let mut index = self.size;
        let mut level = 0;
        let mut h = leaf;
        stored(stored_index(0, index), h);
        while index & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            level += 1;
            index >>= 1;
            stored(stored_index(level, index), h);
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// A complete subtree: `level` (its height) and its position in that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub level: u32,
    pub index: u64,
}

impl Node {
    pub fn stored_index(self) -> u64 {
        stored_index(self.level, self.index)
    }
}

/// The complete subtrees whose hashes make up the hash of leaves
/// `[lo, hi)`, left to right.
fn complete_subtrees(lo: u64, hi: u64, out: &mut Vec<Node>) {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        out.push(Node {
            level: n.trailing_zeros(),
            index: lo / n,
        });
        return;
    }
    let k = split(n);
    complete_subtrees(lo, lo + k, out);
    complete_subtrees(lo + k, hi, out);
}

/// The hash of leaves `[lo, hi)`, from the hashes of complete subtrees.
fn range_hash(lo: u64, hi: u64, get: &dyn Fn(Node) -> Option<Hash>) -> Option<Hash> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return get(Node {
            level: n.trailing_zeros(),
            index: lo / n,
        });
    }
    let k = split(n);
    Some(node_hash(
        &range_hash(lo, lo + k, get)?,
        &range_hash(lo + k, hi, get)?,
    ))
}

/// The leaf ranges whose hashes form the inclusion proof of leaf `m` in a
/// tree of `n` leaves (RFC 9162 2.1.3.1), from the leaf up.
fn inclusion_ranges(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split(hi - lo);
    if m < lo + k {
        inclusion_ranges(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(m, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// The leaf ranges whose hashes form the consistency proof from `m` to the
/// tree `[lo, hi)` (RFC 9162 2.1.4.1, SUBPROOF).
fn consistency_ranges(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push((lo, hi));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        consistency_ranges(m, lo, lo + k, whole, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// What a proof over a tree of stored subtrees needs: the ranges it is made
/// of and the complete subtrees those ranges need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    ranges: Vec<(u64, u64)>,
}

impl ProofPlan {
    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(index: u64, size: u64) -> Option<ProofPlan> {
        if index >= size {
            return None;
        }
        let mut ranges = Vec::new();
        inclusion_ranges(index, 0, size, &mut ranges);
        Some(ProofPlan { ranges })
    }

    /// The consistency proof from the tree of `old` leaves to the tree of
    /// `new` leaves (empty when `old` is 0 or equals `new`).
    pub fn consistency(old: u64, new: u64) -> Option<ProofPlan> {
        if old > new {
            return None;
        }
        let mut ranges = Vec::new();
        if old > 0 && old < new {
            consistency_ranges(old, 0, new, true, &mut ranges);
        }
        Some(ProofPlan { ranges })
    }

    /// The complete subtrees to read, each once, in stored order.
    pub fn nodes(&self) -> Vec<Node> {
        let mut out = Vec::new();
        for &(lo, hi) in &self.ranges {
            complete_subtrees(lo, hi, &mut out);
        }
        out.sort_by_key(|n| n.stored_index());
        out.dedup();
        out
    }

    /// The proof's hashes, from the subtrees' hashes; `None` when one is
    /// missing.
    pub fn hashes(&self, get: &dyn Fn(Node) -> Option<Hash>) -> Option<Vec<Hash>> {
        self.ranges
            .iter()
            .map(|&(lo, hi)| range_hash(lo, hi, get))
            .collect()
    }
}

/// The root an inclusion proof leads to, or `None` when the proof has the
/// wrong shape for `index` and `size` (RFC 9162 2.1.3.2).
pub fn root_from_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// Whether `proof` proves leaf `leaf` at `index` in the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    root_from_inclusion(index, size, leaf, proof).is_some_and(|r| r == *root)
}

/// Whether `proof` proves that the tree of `old` leaves with root
/// `old_root` is a prefix of the tree of `new` leaves with root `new_root`
/// (RFC 9162 2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    // The published RFC 6962 / RFC 9162 vectors (Certificate Transparency's
    // reference leaves, as in transparency-dev/merkle's testonly data).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// A tree of the vector leaves, with every stored node kept in a map.
    fn tree(leaves: &[Vec<u8>]) -> (Frontier, HashMap<u64, Hash>) {
        let mut f = Frontier::new();
        let mut stored = HashMap::new();
        for l in leaves {
            f.push(leaf_hash(l), &mut |i, h| {
                stored.insert(i, h);
            });
        }
        (f, stored)
    }

    fn vector_leaves() -> Vec<Vec<u8>> {
        LEAVES.iter().map(|l| hex::decode(l).unwrap()).collect()
    }

    fn prove(plan: &ProofPlan, nodes: &HashMap<u64, Hash>) -> Vec<Hash> {
        plan.hashes(&|n| nodes.get(&n.stored_index()).copied())
            .unwrap()
    }

    #[test]
    fn roots_match_the_published_vectors() {
        let leaves = vector_leaves();
        for n in 0..=8 {
            let (f, _) = tree(&leaves[..n]);
            assert_eq!(hex::encode(f.root()), ROOTS[n], "size {n}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_published_vectors() {
        let (_, nodes) = tree(&vector_leaves());
        // (leaf index, tree size, proof), from RFC 6962's reference tests.
        let cases: [(u64, u64, &[&str]); 5] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (0, 1, &[]),
        ];
        let leaves = vector_leaves();
        for (index, size, want) in cases {
            let plan = ProofPlan::inclusion(index, size).unwrap();
            let got = prove(&plan, &nodes);
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            assert_eq!(got, want, "inclusion of {index} in {size}");
            let leaf = leaf_hash(&leaves[index as usize]);
            let root = h(ROOTS[size as usize]);
            assert!(verify_inclusion(index, size, &leaf, &got, &root));
            // Wrong index, size, leaf, root, or a flipped bit: refused.
            assert!(!verify_inclusion(index + 1, size, &leaf, &got, &root) || size == 1);
            assert!(!verify_inclusion(index, size * 2, &leaf, &got, &root));
            assert!(!verify_inclusion(index, size, &[7; 32], &got, &root));
            assert!(!verify_inclusion(index, size, &leaf, &got, &empty_root()));
            for i in 0..got.len() {
                let mut bad = got.clone();
                bad[i][0] ^= 8;
                assert!(!verify_inclusion(index, size, &leaf, &bad, &root));
            }
            let mut longer = got.clone();
            longer.push(root);
            assert!(!verify_inclusion(index, size, &leaf, &longer, &root));
        }
    }

    #[test]
    fn consistency_proofs_match_the_published_vectors() {
        let (_, nodes) = tree(&vector_leaves());
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, new, want) in cases {
            let plan = ProofPlan::consistency(old, new).unwrap();
            let got = prove(&plan, &nodes);
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            assert_eq!(got, want, "consistency {old} -> {new}");
            let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
            assert!(verify_consistency(old, new, &r1, &r2, &got));
            if !got.is_empty() {
                assert!(!verify_consistency(old, new, &r2, &r1, &got));
                assert!(!verify_consistency(old + 1, new, &r1, &r2, &got));
                assert!(!verify_consistency(old, new, &r1, &r2, &[]));
                for i in 0..got.len() {
                    let mut bad = got.clone();
                    bad[i][0] ^= 16;
                    assert!(!verify_consistency(old, new, &r1, &r2, &bad));
                }
                assert!(!verify_consistency(
                    old,
                    new,
                    &r1,
                    &r2,
                    &got[..got.len() - 1]
                ));
            }
        }
        assert!(!verify_consistency(2, 1, &[0; 32], &[0; 32], &[]));
        assert!(verify_consistency(0, 5, &[0; 32], &[1; 32], &[]));
    }

    #[test]
    fn every_proof_in_every_small_tree_verifies() {
        let leaves: Vec<Vec<u8>> = (0u32..70).map(|i| i.to_be_bytes().to_vec()).collect();
        let (_, nodes) = tree(&leaves);
        let roots: Vec<Hash> = (0..=leaves.len())
            .map(|n| tree(&leaves[..n]).0.root())
            .collect();
        for n in 1..=leaves.len() as u64 {
            for i in 0..n {
                let plan = ProofPlan::inclusion(i, n).unwrap();
                let proof = prove(&plan, &nodes);
                assert!(verify_inclusion(
                    i,
                    n,
                    &leaf_hash(&leaves[i as usize]),
                    &proof,
                    &roots[n as usize]
                ));
                // O(log n) reads: at most two subtrees per level.
                assert!(plan.nodes().len() <= 2 * 64 - (n - 1).leading_zeros() as usize);
            }
            for m in 0..=n {
                let proof = prove(&ProofPlan::consistency(m, n).unwrap(), &nodes);
                assert!(
                    verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &proof),
                    "{m} -> {n}"
                );
            }
        }
    }

    #[test]
    fn stored_indexes_are_gos_and_only_grow() {
        // tlog.StoredHashIndex: after 4 leaves, 7 hashes at 0..=6.
        assert_eq!(
            [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
                .map(|(l, n)| stored_index(l, n)),
            [0, 1, 2, 3, 4, 5, 6]
        );
        let mut f = Frontier::new();
        let mut stored = Vec::new();
        for i in 0u64..1000 {
            f.push(leaf_hash(&i.to_be_bytes()), &mut |i, h| stored.push((i, h)));
        }
        let idx: Vec<u64> = stored.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, (0..idx.len() as u64).collect::<Vec<_>>());
        assert_eq!(idx.len() as u64, 2 * 1000 - u64::from(1000u64.count_ones()));
        let again = Frontier::from_bytes(f.size(), &f.to_bytes()).unwrap();
        assert_eq!(again, f);
        assert!(Frontier::from_bytes(1001, &f.to_bytes()).is_none());
    }
}
