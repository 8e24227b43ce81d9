//! SQLite storage: opening, PRAGMAs, migrations, the `regexp` function, the reader pool and the
//! single writer. SQL lives here and in the submodules; handlers never touch it.

pub mod aggregate;
pub mod backup_copy;
pub mod ngram;
pub mod replication;
pub mod retention;
pub mod search;
pub mod tree;
pub mod uidfilter;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// The free-text body of a stored event from its origin, config and event object: the text ingest
/// indexed for it (the writer recomputes it to delete a purged event's entry and to index events
/// after an unclean stop). The server's comes from the audit configs (`configs::Registry`).
pub type FtsText =
    Arc<dyn Fn(crate::event::Origin, i64, &serde_json::Map<String, serde_json::Value>) -> String + Send + Sync>;

/// The free-text body of the default config's events only (tools and tests without configs).
pub fn standard_fts_text() -> FtsText {
    Arc::new(|origin, _, event| crate::event::fts_body(origin, event))
}
pub type PooledConn = r2d2::PooledConnection<SqliteConnectionManager>;

/// Numbered migrations, embedded at compile time. Applied files are never edited; append only.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init.sql", include_str!("../../migrations/0001_init.sql")),
    ("0002_retention.sql", include_str!("../../migrations/0002_retention.sql")),
    ("0003_segments.sql", include_str!("../../migrations/0003_segments.sql")),
    ("0004_root_index.sql", include_str!("../../migrations/0004_root_index.sql")),
    ("0005_small_segments.sql", include_str!("../../migrations/0005_small_segments.sql")),
    ("0006_fts_batches.sql", include_str!("../../migrations/0006_fts_batches.sql")),
    ("0007_keys_leave_database.sql", include_str!("../../migrations/0007_keys_leave_database.sql")),
    ("0008_substring_index.sql", include_str!("../../migrations/0008_substring_index.sql")),
    ("0009_replication.sql", include_str!("../../migrations/0009_replication.sql")),
    ("0010_configs.sql", include_str!("../../migrations/0010_configs.sql")),
    ("0011_aggregates.sql", include_str!("../../migrations/0011_aggregates.sql")),
    ("0012_root_prefixes.sql", include_str!("../../migrations/0012_root_prefixes.sql")),
    ("0013_substring_groups.sql", include_str!("../../migrations/0013_substring_groups.sql")),
    ("0014_server_event_times.sql", include_str!("../../migrations/0014_server_event_times.sql")),
    ("0015_substring_clusters.sql", include_str!("../../migrations/0015_substring_clusters.sql")),
    ("0016_purge_pending.sql", include_str!("../../migrations/0016_purge_pending.sql")),
];

/// The schema version from which the database holds no private key (migration 0007).
pub const KEYS_LEFT_DATABASE: i64 = 7;

/// The default audit config's number (`events.config`; migration 0010): H2O events and the
/// server's own events belong to it.
pub const DEFAULT_CONFIG: i64 = 0;

/// Events per segment is `1 << SEG_SHIFT`; the expression `seq >> 12` in migration 0005's indexes
/// must match it (a unit test checks).
pub const SEG_SHIFT: u32 = 12;

/// Oldest SQLite accepted: 3.51.3 fixes the WAL-reset race.
const MIN_SQLITE: i32 = 3_051_003;

pub const DB_FILE: &str = "trailkeep.db";

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Testing knob: `TRAILKEEP_UNSAFE_SQLITE_SYNCHRONOUS=normal` runs SQLite with
/// `synchronous=NORMAL`, which loses acknowledged events at a power cut. It exists only so the
/// power-cut test (`tests/reliability/test_powercut.py`) can show that it detects such losses;
/// never set it on a server that keeps real data.
pub const UNSAFE_SYNCHRONOUS_ENV: &str = "TRAILKEEP_UNSAFE_SQLITE_SYNCHRONOUS";

/// The `synchronous` mode for a value of `UNSAFE_SYNCHRONOUS_ENV`: `FULL` when unset or empty,
/// `NORMAL` or `FULL` by name (any case); anything else (`OFF` included) is refused.
pub fn parse_synchronous(value: Option<&str>) -> Result<&'static str, String> {
    match value.map(str::trim) {
        None | Some("") => Ok("FULL"),
        Some(v) if v.eq_ignore_ascii_case("full") => Ok("FULL"),
        Some(v) if v.eq_ignore_ascii_case("normal") => Ok("NORMAL"),
        Some(_) => Err(format!("{UNSAFE_SYNCHRONOUS_ENV} must be `normal` or `full` (a testing knob; leave it unset)")),
    }
}

/// SQLite's `synchronous` mode for every connection of this process: `FULL` unless the testing
/// knob says otherwise (read once; a refused value is reported by `open_rw`, and connections
/// opened without it stay `FULL`).
fn synchronous_mode() -> Result<&'static str, String> {
    static MODE: std::sync::OnceLock<Result<&'static str, String>> = std::sync::OnceLock::new();
    MODE.get_or_init(|| {
        let raw = std::env::var(UNSAFE_SYNCHRONOUS_ENV).ok();
        let mode = parse_synchronous(raw.as_deref());
        if mode == Ok("NORMAL") {
            tracing::warn!(
                "{UNSAFE_SYNCHRONOUS_ENV}=normal: SQLite runs with synchronous=NORMAL, so a power cut loses acknowledged \
                 events and leaves the checkpoint file ahead of the database. TESTING ONLY: never use it for real data"
            );
        }
        mode
    })
    .clone()
}

/// Per-connection settings shared by the writer, the pool and CLI tools.
/// Bytes the WAL file is truncated to when a checkpoint resets it (`journal_size_limit`).
pub const WAL_SIZE_LIMIT: i64 = 192 << 20;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", synchronous_mode().unwrap_or("FULL"))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The WAL file keeps its largest size (SQLite overwrites it rather than appending): after a
    // spike — a backup's long read holding checkpoints back — a reset truncates it to a little
    // more than an autocheckpoint cycle (10,000 frames of 16 KiB).
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    register_regexp(conn)?;
    register_contains(conn)?;
    // `rarray(?)`: a bound list of seqs (the substring index's candidates).
    rusqlite::vtab::array::load_module(conn)?;
    Ok(())
}

/// A second read-write connection to an existing database, for rare writes outside the log
/// (API keys from the admin API). Never used for events.
pub fn open_side_rw(data_dir: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        db_path(data_dir),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    Ok(conn)
}

/// A read-only connection outside the reader pool, for work on a thread of its own (the substring
/// indexer's read-back, the writer's background rebuild of the event-id filter).
pub fn open_ro(data_dir: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        db_path(data_dir),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.pragma_update(None, "cache_size", -2_048)?;
    Ok(conn)
}

/// Opens (creating if needed) the database read-write, applies migrations and returns the connection.
/// A new data directory is created 0700 and a new database 0600 (its `-wal` and `-shm` files take
/// the database file's mode).
pub fn open_rw(data_dir: &Path) -> anyhow::Result<Connection> {
    crate::datadir::prepare_dir(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    if rusqlite::version_number() < MIN_SQLITE {
        bail!("SQLite {} is too old (need 3.51.3 or newer)", rusqlite::version());
    }
    synchronous_mode().map_err(anyhow::Error::msg)?;
    let path = db_path(data_dir);
    crate::datadir::touch_private(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut conn = Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    // 16 KiB pages: index leaves hold more entries, so a commit dirties fewer pages. Only takes
    // effect on a new database (before WAL mode and the first table).
    conn.pragma_update(None, "page_size", 16_384)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("cannot enable WAL on {}", path.display());
    }
    configure(&conn)?;
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    conn.pragma_update(None, "cache_size", -32_768)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Applies pending migrations; refuses a database newer than this binary.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        bail!(
            "the database schema is version {current}, newer than this trailkeep supports ({known}); upgrade trailkeep"
        );
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).with_context(|| format!("migration {name} failed"))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied migration");
    }
    Ok(())
}

/// A pool of read-only connections for searches.
pub fn reader_pool(data_dir: &Path, size: u32) -> anyhow::Result<Pool> {
    let manager = SqliteConnectionManager::file(db_path(data_dir))
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI)
        .with_init(|c| {
            configure(c)?;
            c.pragma_update(None, "query_only", "ON")?;
            // 2 MiB each: searches read mostly from the OS cache either way, and 8 readers of 4 MiB
            // spread over glibc's per-thread arenas raised the server's peak RSS by ~22 MB.
            c.pragma_update(None, "cache_size", -2_048)
        });
    Ok(r2d2::Pool::builder().max_size(size).build(manager)?)
}

/// `regexp(pattern, value)`: RE2-compatible partial match; the compiled pattern is cached per statement.
fn register_regexp(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function("regexp", 2, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, |ctx| {
        let re: Arc<regex::Regex> = ctx.get_or_create_aux(0, |vr| -> Result<_, BoxError> {
            let pattern = vr.as_str()?;
            Ok(crate::search::re2::compile(pattern)?)
        })?;
        let matched = match ctx.get_raw(1) {
            rusqlite::types::ValueRef::Null => re.is_match(""),
            v => re.is_match(v.as_str().unwrap_or_default()),
        };
        Ok(matched)
    })
}

/// `tk_contains(haystack, needle)`: 1 if the text `haystack` holds `needle` as a byte substring,
/// else 0 (also for NULL): the cheap pre-check `search::pangea_query` puts before the JSON tests
/// of a substring term (`Columns::verbatim`). The needle's searcher is built once per statement.
fn register_contains(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "tk_contains",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let finder: Arc<memchr::memmem::Finder<'static>> = ctx
                .get_or_create_aux(1, |vr| -> Result<_, BoxError> {
                    Ok(memchr::memmem::Finder::new(vr.as_bytes()?).into_owned())
                })?;
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => finder.find(t).is_some(),
                _ => false,
            })
        },
    )
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Interns a string, returning its id (writer connection only).
pub fn intern(conn: &Connection, value: &str) -> rusqlite::Result<i64> {
    if let Some(id) = lookup_string(conn, value)? {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO strings(value) VALUES (?1)")?.execute([value])?;
    Ok(conn.last_insert_rowid())
}

pub fn lookup_string(conn: &Connection, value: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM strings WHERE value = ?1")?.query_row([value], |r| r.get(0)).optional()
}

pub fn get_setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()
}

pub fn put_setting(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The settings rows that held the server's private keys before migration 0007, and its mark that
/// moving them out is not finished.
pub const LEGACY_SIGNING_KEY: &str = "signing_key";
pub const LEGACY_PAGE_TOKEN_KEY: &str = "page_token_key";
const KEYS_MOVE_PENDING: &str = "keys_move_pending";
/// The public half of the root-signing key (32 bytes), recorded for `verify`, backups and the
/// check that the key store holds the trail's key.
pub const PUBLIC_KEY: &str = "public_key";

/// What a database written before the key store still holds.
pub struct LegacyKeys {
    pub signing: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub page_token: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// The move started (migration 0007 found keys) and the wipe is not done.
    pub pending: bool,
}

impl LegacyKeys {
    pub fn any(&self) -> bool {
        self.signing.is_some() || self.page_token.is_some() || self.pending
    }
}

pub fn legacy_keys(conn: &Connection) -> rusqlite::Result<LegacyKeys> {
    Ok(LegacyKeys {
        signing: get_setting(conn, LEGACY_SIGNING_KEY)?.map(zeroize::Zeroizing::new),
        page_token: get_setting(conn, LEGACY_PAGE_TOKEN_KEY)?.map(zeroize::Zeroizing::new),
        pending: get_setting(conn, KEYS_MOVE_PENDING)?.is_some(),
    })
}

/// Whether the database in `data_dir` was written by a release before the key store (schema
/// older than 0007, or keys not yet moved out). Opens it read-only; `false` without a database.
pub fn written_before_key_store(data_dir: &Path) -> anyhow::Result<bool> {
    let path = db_path(data_dir);
    if !path.exists() {
        return Ok(false);
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let has_settings: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'settings')", [], |r| r.get(0))?;
    Ok(version < KEYS_LEFT_DATABASE || (has_settings && legacy_keys(&conn)?.any()))
}

/// Records the root-signing public key (if given) and deletes the private-key rows, in one
/// transaction, with `secure_delete` so the freed cells are zeroed. The caller has made the key
/// files durable first.
pub fn drop_legacy_keys(conn: &Connection, public_key: Option<&[u8; 32]>) -> rusqlite::Result<()> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    let done = (|| {
        let tx = conn.unchecked_transaction()?;
        if let Some(pk) = public_key {
            put_setting(&tx, PUBLIC_KEY, pk)?;
        }
        tx.execute("DELETE FROM settings WHERE key IN (?1, ?2)", params![LEGACY_SIGNING_KEY, LEGACY_PAGE_TOKEN_KEY])?;
        tx.commit()
    })();
    conn.pragma_update(None, "secure_delete", "OFF")?;
    done
}

/// Rewrites the database without its deleted content (`VACUUM`), copies the result over the
/// database file and empties the WAL (`wal_checkpoint(TRUNCATE)`), then clears the pending mark.
/// Fails, leaving the mark for the next open, if another connection holds the WAL.
pub fn wipe_deleted_keys(conn: &Connection) -> anyhow::Result<()> {
    conn.execute_batch("VACUUM").context("VACUUM failed")?;
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if busy != 0 {
        bail!("another process holds the database open; stop it and start again to finish wiping the old keys");
    }
    conn.execute("DELETE FROM settings WHERE key = ?1", [KEYS_MOVE_PENDING])?;
    Ok(())
}

/// Returns a setting, creating it with `make` on first use.
pub fn setting_or_init(conn: &Connection, key: &str, make: impl FnOnce() -> Vec<u8>) -> rusqlite::Result<Vec<u8>> {
    if let Some(v) = get_setting(conn, key)? {
        return Ok(v);
    }
    let v = make();
    conn.execute("INSERT OR IGNORE INTO settings(key, value) VALUES (?1, ?2)", params![key, v])?;
    Ok(get_setting(conn, key)?.unwrap_or(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Columns::verbatim`'s pre-check relies on: for a term `verbatim_term` accepts, whenever
    /// `json_extract` of a field of a canonical envelope contains it, `tk_contains` finds it in the
    /// envelope's text. Over strings with escapes, control and non-ASCII characters, integers
    /// beyond 64 bits, floats SQLite prints otherwise (`1e+21` as `1.0e+21`), booleans, null,
    /// objects and arrays; terms cut from what `json_extract` returns and from the envelope.
    #[test]
    fn verbatim_pre_check_never_hides_a_match() {
        use crate::search::pangea_query::verbatim_term;
        use serde_json::{Value, json};
        let conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let pieces = [
            "ab", "b-c", "\"", "\\", "\n", "\u{1}", "\u{7f}", "é", "日本", "😀", "1", "0e", "+", ".", "In", "f",
            "true", ":", ",", "{", "]", " ",
        ];
        let text =
            |n: &mut dyn FnMut(usize) -> usize| -> String { (0..1 + n(5)).map(|_| pieces[n(pieces.len())]).collect() };
        let numbers = [
            "0",
            "-0",
            "-0.0",
            "1e+21",
            "1e-07",
            "1.5",
            "123456789012345678901234567890",
            "1e+308",
            "100000.0",
            "true",
            "false",
            "null",
        ];
        let (mut checked, mut found) = (0, 0);
        for _ in 0..3000 {
            let value: Value = match next(4) {
                0 => json!(text(&mut next)),
                1 => serde_json::from_str(numbers[next(numbers.len())]).unwrap(),
                2 => {
                    json!({ text(&mut next): text(&mut next), "n": serde_json::from_str::<Value>(numbers[next(numbers.len())]).unwrap(), "a": [text(&mut next), 1.5, null] })
                }
                _ => json!([text(&mut next), serde_json::from_str::<Value>(numbers[next(numbers.len())]).unwrap()]),
            };
            let envelope = crate::event::canonical::to_canonical_string(&json!({"event": {"f": value, "g": "x"}}));
            let extracted: Option<String> = conn
                .query_row("SELECT CAST(json_extract(?1, '$.event.f') AS TEXT)", [&envelope], |r| r.get(0))
                .unwrap();
            let Some(extracted) = extracted else { continue };
            for from in [&extracted, &envelope, &extracted] {
                let chars: Vec<char> = from.chars().collect();
                let len = (1 + next(8)).min(chars.len());
                let at = next(chars.len() - len + 1);
                let term: String = chars[at..at + len].iter().collect();
                let (contains, pre): (bool, bool) = conn
                    .query_row(
                        "SELECT instr(json_extract(?1, '$.event.f'), ?2) > 0, tk_contains(?1, ?2)",
                        [&envelope, &term],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                if verbatim_term(&term) {
                    checked += 1;
                    found += usize::from(contains);
                    assert!(pre || !contains, "{term:?} in {extracted:?} but not found in {envelope:?}");
                }
            }
        }
        assert!(checked > 2000 && found > 1000, "{checked} terms checked, {found} contained");
        // Terms the pre-check is not used for: numbers as SQLite prints them, escaped characters.
        for term in ["1.0e+21", "Inf", "100000.0", "a\"b", "a\\b", "a\nb", ""] {
            assert!(!verbatim_term(term), "{term:?}");
        }
    }

    #[test]
    fn synchronous_knob_is_full_unless_normal_is_asked_for() {
        assert_eq!(parse_synchronous(None), Ok("FULL"));
        assert_eq!(parse_synchronous(Some("")), Ok("FULL"));
        assert_eq!(parse_synchronous(Some("Full")), Ok("FULL"));
        assert_eq!(parse_synchronous(Some(" normal ")), Ok("NORMAL"));
        assert_eq!(parse_synchronous(Some("NORMAL")), Ok("NORMAL"));
        for bad in ["off", "0", "extra", "1"] {
            let err = parse_synchronous(Some(bad)).unwrap_err();
            assert!(err.contains(UNSAFE_SYNCHRONOUS_ENV), "{err}");
        }
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, embedded);
    }

    #[test]
    fn migrates_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_rw(dir.path()).unwrap();
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = open_rw(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[test]
    fn a_wal_spike_is_truncated_back_after_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_rw(dir.path()).unwrap();
        let limit: i64 = conn.pragma_query_value(None, "journal_size_limit", |r| r.get(0)).unwrap();
        assert_eq!(limit, WAL_SIZE_LIMIT);
        // With a small limit, a WAL grown while a reader held checkpoints back shrinks to it at the
        // next write after a full checkpoint.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024).unwrap();
        conn.execute_batch("CREATE TABLE spike(x BLOB)").unwrap();
        let reader = open_ro(dir.path()).unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM spike;").unwrap();
        for _ in 0..64 {
            conn.execute("INSERT INTO spike VALUES (zeroblob(65536))", []).unwrap();
        }
        let wal = dir.path().join("trailkeep.db-wal");
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > 4 << 20, "{grown}");
        reader.execute_batch("COMMIT").unwrap();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).unwrap();
        conn.execute("INSERT INTO spike VALUES (1)", []).unwrap();
        let after = std::fs::metadata(&wal).unwrap().len();
        assert!(after <= 64 * 1024 + 2 * 16_384 + 32, "{grown} -> {after}");
    }

    #[test]
    fn regexp_function_matches_partially() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_rw(dir.path()).unwrap();
        let m: bool = conn.query_row("SELECT regexp('b+', 'abbbc')", [], |r| r.get(0)).unwrap();
        assert!(m);
        let m: bool = conn.query_row("SELECT regexp('^b', 'abc')", [], |r| r.get(0)).unwrap();
        assert!(!m);
        assert!(conn.query_row("SELECT regexp('(', 'abc')", [], |r| r.get::<_, bool>(0)).is_err());
    }
}
