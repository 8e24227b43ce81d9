//! An in-memory Bloom filter over every stored event id. The event-id index is clustered by
//! segment (migration 0005), so "is this id stored?" would otherwise probe every segment; the
//! filter answers "no" for almost every new id (false positives ≈ 0.06% at its capacity) and only
//! a "maybe" is confirmed against the index, newest segment first. Writer thread only.
//!
//! An id added for a transaction that rolls back stays in the filter: that costs a false positive,
//! never a missed duplicate.

use rusqlite::Connection;
use uuid::Uuid;

/// Filter bits per id at capacity.
const BITS_PER_ID: usize = 16;
/// Probes per id.
const PROBES: u64 = 8;
/// The smallest capacity (ids).
const MIN_CAPACITY: usize = 1 << 16;

pub struct UidFilter {
    bits: Vec<u64>,
    mask: u64,
    count: usize,
    capacity: usize,
}

impl UidFilter {
    pub fn with_capacity(ids: usize) -> Self {
        let capacity = ids.max(MIN_CAPACITY).next_power_of_two();
        let nbits = capacity * BITS_PER_ID;
        Self { bits: vec![0; nbits / 64], mask: nbits as u64 - 1, count: 0, capacity }
    }

    /// Builds the filter from every id in the database, with room for as many again.
    pub fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        let mut filter = Self::with_capacity(2 * n as usize);
        let mut stmt = conn.prepare("SELECT uid FROM events INDEXED BY events_seg_uid")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(uid) = r.get_ref(0)?.as_blob().ok().and_then(|b| Uuid::from_slice(b).ok()) {
                filter.insert(&uid);
            }
        }
        Ok(filter)
    }

    /// More ids than the filter was sized for: the caller rebuilds it (`load`) to keep false
    /// positives rare.
    pub fn is_full(&self) -> bool {
        self.count > self.capacity
    }

    pub fn insert(&mut self, uid: &Uuid) {
        let (h1, h2) = hashes(uid);
        for i in 0..PROBES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.count += 1;
    }

    /// False: the id is not stored. True: it may be.
    pub fn may_contain(&self, uid: &Uuid) -> bool {
        let (h1, h2) = hashes(uid);
        (0..PROBES).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

/// Two independent 64-bit hashes of the id (UUIDv7 ids start with a timestamp, so the bytes are
/// mixed rather than used as they are); the second is odd, so the probes cycle through all bits.
fn hashes(uid: &Uuid) -> (u64, u64) {
    let b = uid.as_bytes();
    let hi = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let lo = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    let h1 = mix(hi ^ mix(lo));
    let h2 = mix(h1 ^ lo) | 1;
    (h1, h2)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = UidFilter::with_capacity(100_000);
        let stored: Vec<Uuid> =
            (0..100_000).map(|i| if i % 2 == 0 { Uuid::new_v4() } else { Uuid::now_v7() }).collect();
        for u in &stored {
            f.insert(u);
        }
        assert!(stored.iter().all(|u| f.may_contain(u)));
        assert!(!f.is_full());
        let false_positives = (0..200_000).filter(|_| f.may_contain(&Uuid::new_v4())).count();
        // 16 bits and 8 probes per id: ~0.06% expected at capacity (this filter is at 76%).
        assert!(false_positives < 400, "{false_positives} false positives in 200,000");
    }

    #[test]
    fn loads_every_stored_id_and_reports_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_rw(dir.path()).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        conn.execute("INSERT INTO strings(id, value) VALUES (1, 'x')", []).unwrap();
        for (seq, id) in ids.iter().enumerate() {
            conn.execute(
                "INSERT INTO events(seq, uid, origin, received_at, event_time, workspace, actor, action, event_source,
                                    read_only, type, buffer, hash, envelope)
                 VALUES (?1, ?2, 0, ?1, ?1, 1, 1, 1, 1, 0, 0, 0, zeroblob(32), '{}')",
                rusqlite::params![seq as i64 * 5_000, &id.as_bytes()[..]],
            )
            .unwrap();
        }
        let mut f = UidFilter::load(&conn).unwrap();
        assert!(ids.iter().all(|u| f.may_contain(u)));
        assert_eq!(f.capacity, MIN_CAPACITY);
        for _ in 0..MIN_CAPACITY {
            f.insert(&Uuid::new_v4());
        }
        assert!(f.is_full());
    }
}
