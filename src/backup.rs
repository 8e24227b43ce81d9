//! Online backups (`VACUUM INTO` on a read transaction, safe while the server writes) and restore.
//! A backup is the database file plus `<file>.checkpoint`, the signed root the copy ends at, so a
//! restored copy verifies on its own.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use crate::ledger::{Checkpoint, checkpoint_path, write_checkpoint};
use crate::store::{self, writer};

pub fn checkpoint_beside(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

/// Copies the live database in `data_dir` to `to` and writes the matching checkpoint beside it.
pub fn backup(data_dir: &Path, to: &Path) -> anyhow::Result<Checkpoint> {
    if to.exists() {
        bail!("{} already exists", to.display());
    }
    let src = Connection::open_with_flags(store::db_path(data_dir), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context("cannot open the database")?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = to.to_str().context("the backup path must be UTF-8")?;
    src.execute("VACUUM INTO ?1", [target]).context("VACUUM INTO failed")?;
    let copy = Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let cp = checkpoint_of(&copy)?;
    let body = serde_json::to_vec_pretty(&cp)?;
    std::fs::write(checkpoint_beside(to), body)?;
    Ok(cp)
}

/// The signed root a database ends at, as a checkpoint.
fn checkpoint_of(conn: &Connection) -> anyhow::Result<Checkpoint> {
    use base64::Engine;
    let key = store::public_key(conn)?.context("the database has no signing key")?;
    let tree_name = String::from_utf8(store::get_setting(conn, "tree_name")?.unwrap_or_default())?;
    let root = writer::latest_root(conn, &tree_name)?.context("the database holds no signed root yet")?;
    Ok(Checkpoint { root, public_key: base64::engine::general_purpose::STANDARD.encode(key.as_bytes()) })
}

/// Restores a backup into an empty (or new) data directory.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let db = store::db_path(data_dir);
    if db.exists() || checkpoint_path(data_dir).exists() {
        bail!(
            "{} already holds a database; restore into an empty directory (a restored older copy is behind the checkpoint and will be refused)",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    std::fs::copy(from, &db).with_context(|| format!("cannot copy {}", from.display()))?;
    let cp: Checkpoint = match std::fs::read(checkpoint_beside(from)) {
        Ok(b) => serde_json::from_slice(&b).context("the backup's checkpoint file is unreadable")?,
        Err(_) => checkpoint_of(&Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?)?,
    };
    write_checkpoint(data_dir, &cp)?;
    Ok(())
}
