//! The destination side of an online backup (`writer::WriterHandle::backup`): the copy's file
//! and the thread that keeps its pages out of the page cache.

use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

/// Pages the backup (`writer`) copies between two nudges of the `Flusher` (64 MiB of 16 KiB pages).
pub const FLUSH_PAGES: i64 = 4_096;

/// A new 0600 file (an existing one is refused) for the copy, written without a journal or syncs
/// (a failed copy is removed, and the finished one is synced before anything vouches for it,
/// `backup::finish_online`); a small page cache, since the pages changed after being copied wait
/// in it until the next step.
pub fn open_target(path: &Path) -> anyhow::Result<Connection> {
    crate::datadir::create_private(path).context("cannot create the backup file")?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .context("cannot open the backup file")?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -4_096)?;
    Ok(conn)
}

/// Each time the writer nudges it, starts the write-back of the copy's dirty pages and drops its
/// clean ones from the page cache (`posix_fadvise(DONTNEED)`), on a thread of its own: a copy of
/// gigabytes would otherwise pile up dirty pages until the kernel throttles the thread that
/// writes them (the writer) and the writer's fsyncs queue behind their write-back, and it would
/// push the live database out of the page cache. The thread ends when the flusher is dropped.
pub struct Flusher {
    nudge: SyncSender<()>,
}

impl Flusher {
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).context("cannot open the backup file")?;
        let (nudge, nudged) = sync_channel::<()>(1);
        std::thread::Builder::new().name("trailkeep-bkcopy".into()).spawn(move || {
            while nudged.recv().is_ok() {
                let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
            }
        })?;
        Ok(Self { nudge })
    }

    /// Never waits: a nudge while the thread is busy is dropped.
    pub fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }
}
