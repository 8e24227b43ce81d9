//! Substring terms through trigrams: the pure part of the substring index (no I/O).
//!
//! A case-sensitive substring term of three or more characters can only match a text that holds
//! every trigram (three consecutive characters) of the term. The index records, per segment of
//! [`SEGMENT_EVENTS`] events, which events hold each trigram of their searchable texts (a
//! posting list per trigram); a search intersects the posting lists of its terms' trigrams and
//! checks only those candidates exactly. The index is a candidate filter, never the answer: an
//! event with all the trigrams of a term but not the term itself (the trigrams in different
//! places, or in different fields) is removed by the exact check, so the answer is the one a
//! plain scan gives.
//!
//! What a text is, and which texts an event has, is the caller's business (`store::search` for
//! Pangea's fields): this module sees an event as a set of texts and a term as one text.
//!
//! Storage shape: the trigrams of a segment are spread over [`PARTS`] rows by a hash of their key,
//! each row holding its trigrams' posting lists ([`encode_part`]); a search reads, per segment,
//! only the rows of its terms' trigrams. A group of segments has rows in the same encoding whose
//! members are segments instead of events ([`group_part`]), so a search evaluates its condition
//! over a group first and reads the rows of the segments left in only.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::pangea_query::{Expr, Op, Term};

/// Events per segment of the index (the log's segments, `store::SEG_SHIFT`).
pub const SEGMENT_EVENTS: usize = 4096;
/// Rows per segment: a trigram's posting list is in row `part(key)`.
pub const PARTS: u32 = 256;
/// Shortest term the index can answer (shorter ones have no trigram: a scan decides them).
pub const MIN_TERM_CHARS: usize = 3;
/// Most trigrams of one term looked up: more only narrow the candidates the exact check sees
/// anyway, and each costs a lookup per segment. They are taken spread over the term.
pub const MAX_TERM_GRAMS: usize = 8;
/// A conjunction left with this few events of a segment stops looking trigrams up: checking them
/// exactly costs less than reading more posting lists.
pub const FEW_CANDIDATES: usize = 4;

const WORDS: usize = SEGMENT_EVENTS / 64;

/// A set of event offsets within a segment (bit `i` = the segment's event `i`).
#[derive(Clone, PartialEq, Eq)]
pub struct Bits(pub [u64; WORDS]);

impl Bits {
    pub const fn empty() -> Self {
        Self([0; WORDS])
    }
    pub fn full() -> Self {
        Self([u64::MAX; WORDS])
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    pub fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    pub fn and(&mut self, o: &Bits) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a &= b);
    }
    pub fn or(&mut self, o: &Bits) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a |= b);
    }
    /// Removes the offsets of `o`.
    pub fn remove(&mut self, o: &Bits) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a &= !b);
    }
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The offsets in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(k, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    k * 64 + b
                })
            })
        })
    }
}

impl std::fmt::Debug for Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The key of a trigram: ASCII trigrams packed exactly into 21 bits, others hashed above them
/// (below 2^31). Two trigrams with one key only cost false candidates, which the exact check
/// removes.
pub fn gram_key(a: char, b: char, c: char) -> u32 {
    let (a, b, c) = (a as u32, b as u32, c as u32);
    if a < 128 && b < 128 && c < 128 {
        return (a << 14) | (b << 7) | c;
    }
    let mut h: u32 = 0x811c_9dc5;
    for x in [a, b, c] {
        h = (h ^ x).wrapping_mul(0x0100_0193);
        h ^= h >> 15;
    }
    (h | (1 << 21)) & 0x7fff_ffff
}

/// The row of a segment that holds a trigram's posting list.
pub fn part(key: u32) -> u32 {
    key.wrapping_mul(0x9E37_79B1) >> 24
}

/// Appends the trigram keys of `text` (one per position; duplicates possible) to `out`.
pub fn push_grams(text: &str, out: &mut Vec<u32>) {
    let mut chars = text.chars();
    let (Some(mut a), Some(mut b)) = (chars.next(), chars.next()) else { return };
    for c in chars {
        out.push(gram_key(a, b, c));
        (a, b) = (b, c);
    }
}

/// Slots of the table that drops repeated keys while an event's keys are cut (keys + 1, 0 = free).
const DEDUP_SLOTS: usize = 2048;

/// The trigram keys of an event's searchable texts, each text on its own (no trigram spans two
/// texts), without duplicates, in no particular order. Called on the thread that submits the
/// event, for every event: duplicates are dropped through a small open-addressing table (sorting
/// cost more than cutting), or by sorting when the texts are long.
pub fn event_grams<'a>(texts: impl IntoIterator<Item = &'a str> + Clone) -> Vec<u32> {
    let bytes: usize = texts.clone().into_iter().map(str::len).sum();
    let mut out = Vec::with_capacity(bytes.min(4 * DEDUP_SLOTS));
    if bytes >= DEDUP_SLOTS / 2 {
        for t in texts {
            push_grams(t, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        return out;
    }
    // Fewer keys than half the table: every probe ends at a free slot or the key itself.
    let mut table = [0u32; DEDUP_SLOTS];
    for t in texts {
        let mut chars = t.chars();
        let (Some(mut a), Some(mut b)) = (chars.next(), chars.next()) else { continue };
        for c in chars {
            let k = gram_key(a, b, c);
            (a, b) = (b, c);
            let mut i = (k.wrapping_mul(0x9E37_79B1) >> 21) as usize;
            loop {
                match table[i] {
                    0 => {
                        table[i] = k + 1;
                        out.push(k);
                        break;
                    }
                    v if v == k + 1 => break,
                    _ => i = (i + 1) % DEDUP_SLOTS,
                }
            }
        }
    }
    out
}

/// The trigrams of a term to look up (at most [`MAX_TERM_GRAMS`], spread over the term), or
/// `None` when the term is too short for the index.
pub fn term_grams(term: &str) -> Option<Vec<u32>> {
    let mut all = Vec::new();
    push_grams(term, &mut all);
    if all.is_empty() {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|k| seen.insert(*k));
    if all.len() <= MAX_TERM_GRAMS {
        return Some(all);
    }
    let n = all.len();
    Some((0..MAX_TERM_GRAMS).map(|i| all[i * (n - 1) / (MAX_TERM_GRAMS - 1)]).collect())
}

/// A necessary condition on an event's trigrams for a query to match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The event has every one of these trigrams.
    Grams(Vec<u32>),
    And(Vec<Need>),
    Or(Vec<Need>),
}

/// The condition an event must meet for `expr` to match it, or `None` when the index cannot
/// narrow the query (a term too short, a negation, an OR with such a branch, a time comparison,
/// a field whose text is not indexed). `indexed(field)` says whether a field's text is in the
/// index (`None`: a bare term, which searches the bare fields).
pub fn need(expr: &Expr, indexed: &dyn Fn(Option<&str>) -> bool) -> Option<Need> {
    match expr {
        Expr::Term(t) => term_need(t, indexed),
        Expr::Not(_) => None,
        Expr::And(items) => {
            let mut parts: Vec<Need> = items.iter().filter_map(|e| need(e, indexed)).collect();
            match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(Need::And(parts)),
            }
        }
        Expr::Or(items) => {
            let parts: Option<Vec<Need>> = items.iter().map(|e| need(e, indexed)).collect();
            let mut parts = parts?;
            match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(Need::Or(parts)),
            }
        }
    }
}

fn term_need(t: &Term, indexed: &dyn Fn(Option<&str>) -> bool) -> Option<Need> {
    if !matches!(t.op, Op::Contains | Op::Equals) || !indexed(t.field.as_deref()) {
        return None;
    }
    term_grams(&t.value).map(Need::Grams)
}

impl Need {
    /// Every trigram key the condition looks up.
    pub fn keys(&self, out: &mut Vec<u32>) {
        match self {
            Need::Grams(g) => out.extend(g),
            Need::And(v) | Need::Or(v) => v.iter().for_each(|n| n.keys(out)),
        }
    }

    /// The events of a segment that may meet the condition (a superset: see
    /// [`FEW_CANDIDATES`]), `postings(key)` giving a trigram's events (`None`: no event of the
    /// segment has it). Lookups stop as soon as a conjunction is down to a few events.
    pub fn eval(&self, postings: &mut dyn FnMut(u32) -> Option<Bits>) -> Bits {
        match self.try_eval(&mut |k| Ok(postings(k))) {
            Ok(b) => b,
            Err(_) => Bits::full(),
        }
    }

    /// As [`Need::eval`] with lookups that may not be answerable yet: `Err(key)` from `postings`
    /// (the trigram's posting list is not at hand) stops the evaluation, which returns that key,
    /// so that a caller can fetch what the next step needs for many segments at once.
    pub fn try_eval(&self, postings: &mut dyn FnMut(u32) -> Result<Option<Bits>, u32>) -> Result<Bits, u32> {
        self.try_eval_until(&|_, after| after <= FEW_CANDIDATES, postings)
    }

    /// As [`Need::try_eval`], a conjunction stopping its lookups once `enough(before, after)`
    /// holds for the members it had before and has after a lookup. Over group rows
    /// (`store::ngram`), whose members are segments, [`group_enough`] applies.
    pub fn try_eval_until(
        &self,
        enough: &dyn Fn(usize, usize) -> bool,
        postings: &mut dyn FnMut(u32) -> Result<Option<Bits>, u32>,
    ) -> Result<Bits, u32> {
        match self {
            Need::Grams(keys) => {
                let mut acc: Option<Bits> = None;
                for k in keys {
                    let Some(b) = postings(*k)? else { return Ok(Bits::empty()) };
                    let before = acc.as_ref().map_or(SEGMENT_EVENTS, Bits::len);
                    match &mut acc {
                        None => acc = Some(b),
                        Some(a) => a.and(&b),
                    }
                    if let Some(a) = &acc
                        && enough(before, a.len())
                    {
                        break;
                    }
                }
                Ok(acc.unwrap_or_else(Bits::full))
            }
            Need::And(items) => {
                let mut acc = Bits::full();
                for n in items {
                    let before = acc.len();
                    acc.and(&n.try_eval_until(enough, postings)?);
                    if enough(before, acc.len()) {
                        break;
                    }
                }
                Ok(acc)
            }
            Need::Or(items) => {
                let mut acc = Bits::empty();
                for n in items {
                    acc.or(&n.try_eval_until(enough, postings)?);
                }
                Ok(acc)
            }
        }
    }

    /// Puts the rarest trigrams first (and, in a conjunction, the rarest part first), `count`
    /// giving how many events of a sample segment have a trigram: an evaluation then usually
    /// empties a conjunction after one or two lookups.
    pub fn order_by_rarity(&mut self, count: &dyn Fn(u32) -> usize) -> usize {
        match self {
            Need::Grams(keys) => {
                keys.sort_by_key(|k| count(*k));
                keys.first().map_or(usize::MAX, |k| count(*k))
            }
            Need::And(items) => {
                let mut sized: Vec<(usize, Need)> =
                    std::mem::take(items).into_iter().map(|mut n| (n.order_by_rarity(count), n)).collect();
                sized.sort_by_key(|(c, _)| *c);
                let min = sized.first().map_or(usize::MAX, |(c, _)| *c);
                *items = sized.into_iter().map(|(_, n)| n).collect();
                min
            }
            Need::Or(items) => items.iter_mut().map(|n| n.order_by_rarity(count)).fold(0usize, usize::saturating_add),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Posting lists of one segment

/// FxHash (rustc's hasher): the keys are already well spread, and SipHash cost more than the
/// work around it.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The posting lists of one segment being built: trigram key → offsets of the events that have
/// it, ascending (events are added in seq order).
pub struct SegmentBuilder {
    lists: FxMap<u32, Vec<u16>>,
    events: usize,
}

impl Default for SegmentBuilder {
    fn default() -> Self {
        // A segment of the benchmark's events has ~9,000 distinct trigrams.
        Self { lists: FxMap::with_capacity_and_hasher(16_384, Default::default()), events: 0 }
    }
}

impl SegmentBuilder {
    /// Adds the event at `offset` (added in increasing order) with its trigram `keys`
    /// (duplicates allowed).
    pub fn add(&mut self, offset: usize, keys: &[u32]) {
        debug_assert!(offset < SEGMENT_EVENTS);
        let off = offset as u16;
        for k in keys {
            let list = self.lists.entry(*k).or_default();
            if list.last() != Some(&off) {
                list.push(off);
            }
        }
        self.events += 1;
    }

    /// Events added so far.
    pub fn events(&self) -> usize {
        self.events
    }

    /// The segment's rows: (part, data) for every part that holds a trigram, ascending.
    pub fn finish(self) -> Vec<(u32, Vec<u8>)> {
        let mut by_part: Vec<Vec<(u32, Vec<u16>)>> = (0..PARTS).map(|_| Vec::new()).collect();
        for (k, list) in self.lists {
            by_part[part(k) as usize].push((k, list));
        }
        by_part
            .into_iter()
            .enumerate()
            .filter(|(_, grams)| !grams.is_empty())
            .map(|(p, mut grams)| {
                grams.sort_unstable_by_key(|(k, _)| *k);
                (p as u32, encode_part(&grams))
            })
            .collect()
    }
}

const LIST: u8 = 0;
const BITMAP: u8 = 1;
const BITMAP_BYTES: usize = SEGMENT_EVENTS / 8;

fn put_varint(mut v: u32, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One posting list: a tag byte, then the offsets as varint gaps, or a bitmap when smaller.
fn encode_list(list: &[u16], out: &mut Vec<u8>) {
    let mut gaps = Vec::with_capacity(list.len() + 1);
    gaps.push(LIST);
    let mut prev = 0u16;
    for (i, &o) in list.iter().enumerate() {
        put_varint(u32::from(if i == 0 { o } else { o - prev }), &mut gaps);
        prev = o;
    }
    if gaps.len() <= 1 + BITMAP_BYTES {
        out.extend_from_slice(&gaps);
        return;
    }
    let mut bits = Bits::empty();
    list.iter().for_each(|&o| bits.insert(usize::from(o)));
    out.push(BITMAP);
    for w in bits.0 {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

fn decode_list(data: &[u8]) -> Option<Bits> {
    let (tag, body) = data.split_first()?;
    let mut bits = Bits::empty();
    match *tag {
        LIST => {
            let (mut pos, mut at) = (0, 0usize);
            while pos < body.len() {
                at += get_varint(body, &mut pos)? as usize;
                if at >= SEGMENT_EVENTS {
                    return None;
                }
                bits.insert(at);
            }
        }
        BITMAP if body.len() == BITMAP_BYTES => {
            for (w, chunk) in bits.0.iter_mut().zip(body.chunks_exact(8)) {
                *w = u64::from_le_bytes(chunk.try_into().ok()?);
            }
        }
        _ => return None,
    }
    Some(bits)
}

/// A row: the number of trigrams, then (key gap, list length) per trigram in key order, then the
/// lists.
pub fn encode_part(grams: &[(u32, Vec<u16>)]) -> Vec<u8> {
    let mut lists = Vec::new();
    let mut dir = Vec::with_capacity(grams.len() * 4 + 4);
    put_varint(grams.len() as u32, &mut dir);
    let mut prev = 0u32;
    for (k, list) in grams {
        let start = lists.len();
        encode_list(list, &mut lists);
        put_varint(k - prev, &mut dir);
        put_varint((lists.len() - start) as u32, &mut dir);
        prev = *k;
    }
    dir.extend_from_slice(&lists);
    dir
}

/// The events of the segment that have trigram `key`, from its row (`None`: none has it). A
/// malformed row (only by editing the database) reads as every event, so a search stays correct.
pub fn find_in_part(data: &[u8], key: u32) -> Option<Bits> {
    let Some(found) = lookup(data, key) else { return Some(Bits::full()) };
    found
}

/// Every event that has some trigram of the row (`None`: a malformed row).
pub fn part_events(data: &[u8]) -> Option<Bits> {
    let mut pos = 0;
    let n = get_varint(data, &mut pos)?;
    let mut lens = Vec::with_capacity(n as usize);
    for _ in 0..n {
        get_varint(data, &mut pos)?;
        lens.push(get_varint(data, &mut pos)? as usize);
    }
    let mut all = Bits::empty();
    for len in lens {
        all.or(&decode_list(data.get(pos..pos + len)?)?);
        pos += len;
    }
    Some(all)
}

/// When a conjunction over group rows stops looking up: once it is empty (its segments are
/// decided), or when a lookup removed no segment (the trigrams are ordered rarest first, so the
/// next ones would most likely remove none either; a segment left in only costs its own rows).
pub fn group_enough(before: usize, after: usize) -> bool {
    after == 0 || after == before
}

/// A row that reads as every member for every key ([`find_in_part`] finds it malformed): the
/// group row of a part one of whose segment rows is malformed.
pub const EVERY_MEMBER: &[u8] = &[0xff];

/// The row of one part for a group of segments (`store::ngram`), from the segments' rows of that
/// part: `(offset of the segment in the group, row)`, offsets ascending. Its members are the
/// group's segments: `find_in_part(row, key)` gives the segments whose row holds `key`. `None`:
/// no segment has a key of the part.
pub fn group_part(rows: &[(usize, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut lists: std::collections::BTreeMap<u32, Vec<u16>> = Default::default();
    for (offset, data) in rows {
        debug_assert!(*offset < SEGMENT_EVENTS);
        let Some(keys) = part_keys(data) else { return Some(EVERY_MEMBER.to_vec()) };
        for k in keys {
            let list = lists.entry(k).or_default();
            if list.last() != Some(&(*offset as u16)) {
                list.push(*offset as u16);
            }
        }
    }
    if lists.is_empty() {
        return None;
    }
    let grams: Vec<(u32, Vec<u16>)> = lists.into_iter().collect();
    Some(encode_part(&grams))
}

/// A segment's row without the events in `gone` (purged ones): every posting list loses them, and
/// a trigram left with no event goes, so the row is what [`SegmentBuilder`] makes from the other
/// events. `None`: a malformed row; `Some(None)`: no trigram is left.
pub fn strip_part(data: &[u8], gone: &Bits) -> Option<Option<Vec<u8>>> {
    let (dir, mut pos) = directory(data)?;
    let mut grams = Vec::with_capacity(dir.len());
    for (key, len) in dir {
        let mut bits = decode_list(data.get(pos..pos.checked_add(len)?)?)?;
        pos += len;
        bits.remove(gone);
        if !bits.is_empty() {
            grams.push((key, bits.iter().map(|o| o as u16).collect::<Vec<u16>>()));
        }
    }
    if pos != data.len() {
        return None;
    }
    Some((!grams.is_empty()).then(|| encode_part(&grams)))
}

/// A row's directory: (trigram key, bytes of its list) in key order, and where the lists start;
/// `None`: a malformed row.
fn directory(data: &[u8]) -> Option<(Vec<(u32, usize)>, usize)> {
    let mut pos = 0;
    let n = get_varint(data, &mut pos)?;
    let mut dir = Vec::with_capacity((n as usize).min(data.len()));
    let mut k = 0u32;
    for _ in 0..n {
        k = k.checked_add(get_varint(data, &mut pos)?)?;
        dir.push((k, get_varint(data, &mut pos)? as usize));
    }
    Some((dir, pos))
}

/// The trigram keys of a row, ascending, from its directory (the lists are not decoded); `None`:
/// a malformed row.
pub fn part_keys(data: &[u8]) -> Option<Vec<u32>> {
    Some(directory(data)?.0.into_iter().map(|(k, _)| k).collect())
}

/// `None` if the row is malformed, else the lookup's result.
fn lookup(data: &[u8], key: u32) -> Option<Option<Bits>> {
    let mut pos = 0;
    let n = get_varint(data, &mut pos)?;
    let (mut k, mut offset) = (0u32, 0usize);
    let mut hit = None;
    for _ in 0..n {
        k = k.checked_add(get_varint(data, &mut pos)?)?;
        let len = get_varint(data, &mut pos)? as usize;
        if k == key && hit.is_none() {
            hit = Some((offset, len));
        }
        offset += len;
    }
    let lists = data.get(pos..)?;
    match hit {
        None => Some(None),
        Some((o, len)) => decode_list(lists.get(o..o + len)?).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::pangea_query::parse;

    impl Need {
        fn sorted(mut self, count: &dyn Fn(u32) -> usize) -> Self {
            self.order_by_rarity(count);
            self
        }
    }

    fn grams(s: &str) -> Vec<u32> {
        let mut v = Vec::new();
        push_grams(s, &mut v);
        v
    }

    #[test]
    fn keys_of_ascii_are_exact_and_others_do_not_collide_with_them() {
        assert_eq!(gram_key('a', 'b', 'c'), (97 << 14) | (98 << 7) | 99);
        assert_ne!(gram_key('a', 'b', 'c'), gram_key('a', 'b', 'd'));
        for t in [['é', 'a', 'b'], ['a', '\u{10FFFF}', 'b'], ['\0', '\0', 'ÿ'], ['日', '本', '語']] {
            assert!(gram_key(t[0], t[1], t[2]) >= 1 << 21, "{t:?}");
        }
        assert!(grams("ab").is_empty());
        assert_eq!(grams("abcd").len(), 2);
        assert_eq!(grams("日本語の").len(), 2);
        assert!((0..PARTS).contains(&part(u32::MAX)));
    }

    #[test]
    fn event_grams_do_not_span_texts() {
        let g = event_grams(["ab", "cd"]);
        assert!(g.is_empty(), "{g:?}");
        let g = event_grams(["xabc", "abcy"]);
        assert_eq!(g.len(), 3);
        // Short and long texts (table and sort) give the same set, once each.
        let mut rng = 0x1234_5678_u64;
        for len in [5usize, 60, 300, 1023, 1024, 4000] {
            let text: String = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    ['a', 'b', 'c', 'é', '日', '\u{1F600}'][(rng % 6) as usize]
                })
                .collect();
            let (half, rest) = text.split_at(text.char_indices().nth(len / 2).map_or(0, |x| x.0));
            let mut got = event_grams([half, rest, half]);
            let n = got.len();
            got.sort_unstable();
            got.dedup();
            assert_eq!(got.len(), n, "duplicates at {len}");
            let mut want = Vec::new();
            push_grams(half, &mut want);
            push_grams(rest, &mut want);
            want.sort_unstable();
            want.dedup();
            assert_eq!(got, want, "{len}");
        }
    }

    #[test]
    fn term_grams_are_spread_and_bounded() {
        assert_eq!(term_grams("ab"), None);
        assert_eq!(term_grams("abc"), Some(vec![gram_key('a', 'b', 'c')]));
        assert_eq!(term_grams("aaaaaa"), Some(vec![gram_key('a', 'a', 'a')]));
        let long = "0123456789abcdefghijklmnop0123";
        let g = term_grams(long).unwrap();
        assert_eq!(g.len(), MAX_TERM_GRAMS);
        assert_eq!(g[0], gram_key('0', '1', '2'));
        // The last new trigram ("p01"; "012" repeats).
        assert_eq!(*g.last().unwrap(), gram_key('p', '0', '1'));
    }

    fn need_of(q: &str) -> Option<Need> {
        let e = parse(q).unwrap().unwrap();
        need(&e, &|f| f != Some("received_at"))
    }

    #[test]
    fn needs_follow_the_query() {
        let g = |s: &str| Need::Grams(term_grams(s).unwrap());
        assert_eq!(need_of("alice"), Some(g("alice")));
        assert_eq!(need_of("actor:alice"), Some(g("alice")));
        assert_eq!(need_of("actor=alice"), Some(g("alice")));
        assert_eq!(need_of("al"), None);
        assert_eq!(need_of("-alice"), None);
        assert_eq!(need_of("alice bo"), Some(g("alice")));
        assert_eq!(need_of("alice bob"), Some(Need::And(vec![g("alice"), g("bob")])));
        assert_eq!(need_of("alice OR bob"), Some(Need::Or(vec![g("alice"), g("bob")])));
        assert_eq!(need_of("alice OR bo"), None);
        assert_eq!(need_of("alice OR -bob"), None);
        assert_eq!(need_of("(alice OR bob) -carol"), Some(Need::Or(vec![g("alice"), g("bob")])));
        assert_eq!(need_of("received_at:2025-01"), None);
        assert_eq!(need_of("timestamp>2025-01-01T00:00:00Z"), None);
        assert_eq!(need_of("received_at:2025-01 alice"), Some(g("alice")));
        assert_eq!(need_of("\"\""), None);
    }

    #[test]
    fn parts_round_trip_lists_and_bitmaps() {
        let sparse: Vec<u16> = vec![0, 5, 200, 4095];
        let dense: Vec<u16> = (0..4096).step_by(2).collect();
        let single: Vec<u16> = vec![7];
        let grams = vec![(3u32, sparse.clone()), (90_000, dense.clone()), (u32::MAX, single.clone())];
        let row = encode_part(&grams);
        for (k, list) in &grams {
            let bits = find_in_part(&row, *k).unwrap();
            assert_eq!(bits.iter().map(|i| i as u16).collect::<Vec<_>>(), *list);
        }
        assert_eq!(find_in_part(&row, 4), None);
        let all = part_events(&row).unwrap();
        assert_eq!(all.len(), 2048 + 3, "{all:?}");
        assert!(row.len() < 4 + 3 * 4 + 7 + 513 + 2, "{}", row.len());
        // A damaged row answers "every event" (the exact check decides), never "none".
        assert_eq!(find_in_part(&row[..row.len() - 3], 90_000), Some(Bits::full()));
        assert_eq!(find_in_part(&[0xff], 3), Some(Bits::full()));
    }

    #[test]
    fn group_rows_list_the_segments_holding_each_trigram() {
        let a: Vec<u16> = vec![1, 2];
        let rows = vec![
            (0usize, encode_part(&[(3u32, a.clone()), (90_000, a.clone())])),
            (5, encode_part(&[(3, a.clone()), (7, a.clone())])),
            (63, encode_part(&[(7, a.clone()), (u32::MAX, a.clone())])),
        ];
        assert_eq!(part_keys(&rows[0].1), Some(vec![3, 90_000]));
        assert_eq!(part_keys(&encode_part(&[])), Some(vec![]));
        assert_eq!(part_keys(&[0xff]), None);
        let group = group_part(&rows).unwrap();
        let members = |k: u32| find_in_part(&group, k).map(|b| b.iter().collect::<Vec<_>>());
        assert_eq!(members(3), Some(vec![0, 5]));
        assert_eq!(members(7), Some(vec![5, 63]));
        assert_eq!(members(90_000), Some(vec![0]));
        assert_eq!(members(u32::MAX), Some(vec![63]));
        assert_eq!(members(4), None);
        assert_eq!(group_part(&[]), None);
        assert_eq!(group_part(&[(0, encode_part(&[]))]), None);
        // A malformed segment row makes the group's row read as every segment, for every key.
        let damaged = vec![rows[0].clone(), (9, rows[1].1[..2].to_vec())];
        let group = group_part(&damaged).unwrap();
        assert_eq!(find_in_part(&group, 4), Some(Bits::full()));

        // Evaluated over segments, a conjunction goes on while its lookups remove segments.
        let group = group_part(&rows[..2]).unwrap();
        let eval = |n: &Need| {
            let mut lookups = 0;
            let got = n
                .try_eval_until(&group_enough, &mut |k: u32| {
                    lookups += 1;
                    Ok(find_in_part(&group, k))
                })
                .unwrap();
            (got.iter().collect::<Vec<_>>(), lookups)
        };
        let n = Need::And(vec![Need::Grams(vec![3]), Need::Grams(vec![90_000])]);
        assert_eq!(eval(&n), (vec![0], 2));
        assert_eq!(eval(&Need::Grams(vec![3, 90_000, 7])), (vec![], 3));
        assert_eq!(eval(&Need::Grams(vec![4, 3])), (vec![], 1));
        // A lookup that removes nothing ends the conjunction (3 and 3 again: both segments).
        assert_eq!(eval(&Need::Grams(vec![3, 3, 90_000])), (vec![0, 5], 2));
    }

    #[test]
    fn builder_and_eval_find_the_events_with_all_trigrams() {
        let texts = [vec!["alice", "login"], vec!["bob", "logout"], vec!["alicia", "x"], vec!["malice", "log"]];
        // Ten copies of each (more than FEW_CANDIDATES, so that conjunctions are evaluated whole).
        let mut b = SegmentBuilder::default();
        for (i, t) in texts.iter().enumerate() {
            for j in 0..10 {
                b.add(i * 1000 + j, &event_grams(t.iter().copied()));
            }
        }
        assert_eq!(b.events(), 40);
        let rows: HashMap<u32, Vec<u8>> = b.finish().into_iter().collect();
        let mut get = |k: u32| rows.get(&part(k)).and_then(|r| find_in_part(r, k));
        let run = |q: &str, get: &mut dyn FnMut(u32) -> Option<Bits>| {
            let mut v = need_of(q).unwrap().eval(get).iter().map(|i| i / 1000).collect::<Vec<_>>();
            v.dedup();
            v
        };
        assert_eq!(run("alice", &mut get), vec![0, 3]);
        assert_eq!(run("logo", &mut get), vec![1]);
        assert_eq!(run("log", &mut get), vec![0, 1, 3]);
        assert_eq!(run("alice logout", &mut get), Vec::<usize>::new());
        assert_eq!(run("alic OR bob", &mut get), vec![0, 1, 2, 3]);
        assert_eq!(run("nothing", &mut get), Vec::<usize>::new());

        // Rarest first; a lookup that cannot be answered yet names its trigram.
        let mut n = need_of("alice logout").unwrap();
        let count = |k: u32| rows.get(&part(k)).and_then(|r| find_in_part(r, k)).map_or(0, |b| b.len());
        n.order_by_rarity(&count);
        let Need::And(items) = &n else { panic!("{n:?}") };
        assert_eq!(items[0], Need::Grams(term_grams("logout").unwrap()).clone().sorted(&count));
        let first = n.try_eval(&mut |k| Err(k)).unwrap_err();
        assert_eq!(count(first), 10);
        assert!(n.try_eval(&mut |k| Ok(get(k))).unwrap().is_empty());

        // A conjunction down to a few events stops looking up (those are checked exactly).
        let mut single = SegmentBuilder::default();
        single.add(0, &event_grams(["alice"]));
        single.add(1, &event_grams(["alibi"]));
        let rows: HashMap<u32, Vec<u8>> = single.finish().into_iter().collect();
        let mut lookups = 0;
        let got = need_of("alice").unwrap().eval(&mut |k| {
            lookups += 1;
            rows.get(&part(k)).and_then(|r| find_in_part(r, k))
        });
        assert_eq!((got.len(), lookups), (2, 1), "{got:?}");
    }

    /// Stripping purged events from a segment's rows gives the rows built without them, byte for
    /// byte: lists and bitmaps, trigrams left with no event dropped, parts left empty gone.
    #[test]
    fn strip_part_equals_building_without_the_purged_events() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let words = ["alpha", "beta", "gamma", "délta", "epsilon", "{\"k\":1}", "zeta", "rare-one"];
        let events: Vec<Vec<u32>> = (0..SEGMENT_EVENTS)
            .map(|i| {
                let mut texts: Vec<String> = (0..3).map(|_| words[next(7) as usize].to_string()).collect();
                texts.push(format!("id-{}", next(100_000)));
                if i % 1000 == 7 {
                    texts.push(words[7].to_string());
                }
                event_grams(texts.iter().map(String::as_str))
            })
            .collect();
        for purge_every in [2u64, 5, 50, 4096] {
            let mut gone = Bits::empty();
            let (mut all, mut kept) = (SegmentBuilder::default(), SegmentBuilder::default());
            for (i, keys) in events.iter().enumerate() {
                all.add(i, keys);
                if next(purge_every) == 0 || purge_every == 4096 {
                    gone.insert(i);
                } else {
                    kept.add(i, keys);
                }
            }
            let stripped: Vec<(u32, Vec<u8>)> = all
                .finish()
                .into_iter()
                .filter_map(|(p, row)| strip_part(&row, &gone).unwrap().map(|r| (p, r)))
                .collect();
            assert_eq!(stripped, kept.finish(), "one in {purge_every} purged");
        }
        assert_eq!(strip_part(&[3, 1], &Bits::empty()), None, "a malformed row");
    }
}
