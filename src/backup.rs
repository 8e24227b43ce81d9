//! Backups and restore. `trailkeep backup` copies with `VACUUM INTO` on a read transaction (safe
//! while a server writes, but no WAL checkpoint passes its snapshot); a running server's writer
//! copies step by step between commits (`POST /api/v1/backups`, `store::writer`).
//! A backup is the database file plus `<file>.checkpoint`, the signed root the copy ends at, so a
//! restored copy verifies on its own; with `--include-keys` also `<file>.keys/`, a copy of the key
//! store (the database holds no private key). Everything is written 0600 (directories 0700).

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, OpenFlags};

use crate::datadir;
use crate::keystore::{self, KeyInfo};
use crate::ledger::{Checkpoint, checkpoint_path, write_checkpoint};
use crate::serverkeys;
use crate::store::{self, writer};

pub fn checkpoint_beside(file: &Path) -> PathBuf {
    beside(file, ".checkpoint")
}

/// Where `backup --include-keys` puts the key files: `<file>.keys/`.
pub fn keys_beside(file: &Path) -> PathBuf {
    beside(file, ".keys")
}

fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What `backup` wrote.
pub struct Backup {
    pub checkpoint: Checkpoint,
    /// The key files copied (with `--include-keys`).
    pub keys: Vec<KeyInfo>,
}

/// Refuses a backup whose file, checkpoint or key copy is already there.
pub fn check_free(to: &Path) -> anyhow::Result<()> {
    for p in [to, &checkpoint_beside(to), &keys_beside(to)] {
        if p.exists() {
            bail!("{} already exists", p.display());
        }
    }
    Ok(())
}

/// Copies the live database in `data_dir` to `to` and writes the matching checkpoint beside it;
/// with `include_keys`, also the key store's files into `<to>.keys/`. `VACUUM INTO` reads one
/// snapshot for the whole copy, so no checkpoint passes it meanwhile: a running server's WAL
/// grows by its write rate times the copy's length (`POST /api/v1/backups` copies on the
/// server's writer instead, `finish_online`).
pub fn backup(data_dir: &Path, to: &Path, include_keys: bool) -> anyhow::Result<Backup> {
    check_free(to)?;
    let src = Connection::open_with_flags(store::db_path(data_dir), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context("cannot open the database")?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = to.to_str().context("the backup path must be UTF-8")?;
    // VACUUM INTO accepts an empty file: created here 0600, whatever the umask.
    datadir::create_private(to).with_context(|| format!("cannot create {}", to.display()))?;
    if let Err(e) = src.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(to);
        return Err(e).context("VACUUM INTO failed");
    }
    seal(data_dir, to, include_keys)
}

/// Finishes a copy the server's writer made (`WriterHandle::backup`, for `POST
/// /api/v1/backups`): the copy leaves WAL mode (a file of its own, as `backup` writes it), then
/// it is sealed like any backup.
pub fn finish_online(data_dir: &Path, to: &Path, include_keys: bool) -> anyhow::Result<Backup> {
    let copy = Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let mode: String = copy.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        bail!("the copy stays in {mode} mode");
    }
    drop(copy);
    seal(data_dir, to, include_keys)
}

/// On disk before the checkpoint that vouches for it: syncs the copy, then writes the checkpoint
/// it ends at beside it and, with `include_keys`, copies the key files.
fn seal(data_dir: &Path, to: &Path, include_keys: bool) -> anyhow::Result<Backup> {
    let synced = std::fs::File::open(to).and_then(|f| f.sync_all());
    if let Err(e) = synced {
        let _ = std::fs::remove_file(to);
        return Err(e).context("cannot sync the backup");
    }
    let copy = Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let checkpoint = checkpoint_of(&copy)?;
    drop(copy);
    let body = serde_json::to_vec_pretty(&checkpoint)?;
    let mut f = datadir::create_private(&checkpoint_beside(to))?;
    f.write_all(&body)?;
    f.sync_all()?;
    let keys =
        if include_keys { copy_key_files(&serverkeys::keys_dir(data_dir), &keys_beside(to))? } else { Vec::new() };
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        datadir::sync_dir(dir)?;
    }
    Ok(Backup { checkpoint, keys })
}

/// Copies every key file of `from` into the new directory `to` (0700; files 0600, fsynced).
fn copy_key_files(from: &Path, to: &Path) -> anyhow::Result<Vec<KeyInfo>> {
    let keys = if from.exists() { keystore::scan(from)? } else { Vec::new() };
    std::fs::DirBuilder::new().mode(0o700).create(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut copied = Vec::with_capacity(keys.len());
    for k in keys {
        let file = k.path.file_name().context("a key file without a name")?;
        let dest = to.join(file);
        let bytes = zeroize::Zeroizing::new(std::fs::read(&k.path)?);
        let mut f = datadir::create_private(&dest).with_context(|| format!("cannot create {}", dest.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        copied.push(KeyInfo { path: dest, ..k });
    }
    datadir::sync_dir(to)?;
    Ok(copied)
}

/// The signed root a database ends at, as a checkpoint.
fn checkpoint_of(conn: &Connection) -> anyhow::Result<Checkpoint> {
    let public = serverkeys::public_key(conn)?.context("the database records no public key")?;
    let tree_name = String::from_utf8(store::get_setting(conn, "tree_name")?.unwrap_or_default())?;
    let root = writer::latest_root(conn, &tree_name)?.context("the database holds no signed root yet")?;
    Ok(Checkpoint { root, public_key: B64.encode(public.as_bytes()) })
}

/// What `restore` found and did about the keys.
pub struct Restore {
    /// The public key of the trail's root-signing key (what the restored trail needs to continue).
    pub public_key: String,
    /// Key files put into the data directory's key store.
    pub keys: Vec<KeyInfo>,
    /// The root-signing key file among them, if found.
    pub root_signing: Option<KeyInfo>,
    /// The backup was made by a release that kept the keys in the database: they move to the
    /// key store at the first start.
    pub keys_in_database: bool,
}

/// Restores a backup into an empty (or new) data directory. Key files come from `keys` if given,
/// else from `<from>.keys/` if the backup has one; `keys` must hold the root-signing key whose
/// public key the backup records (checked before anything is written).
pub fn restore(from: &Path, data_dir: &Path, keys: Option<&Path>) -> anyhow::Result<Restore> {
    let db = store::db_path(data_dir);
    if db.exists() || checkpoint_path(data_dir).exists() {
        bail!(
            "{} already holds a database; restore into an empty directory (a restored older copy is behind the checkpoint and will be refused)",
            data_dir.display()
        );
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", from.display()))?;
    let public = serverkeys::public_key(&source)
        .with_context(|| format!("{} is not a trailkeep backup", from.display()))?
        .context("the backup records no public key (it holds no signed root)")?;
    let keys_in_database = store::legacy_keys(&source)?.signing.is_some();
    let cp: Option<Checkpoint> = match std::fs::read(checkpoint_beside(from)) {
        Ok(b) => Some(crate::ledger::parse_checkpoint(&b).context("the backup's checkpoint file is unreadable")?),
        Err(_) => None,
    };
    let cp = match cp {
        Some(cp) => cp,
        None => checkpoint_of(&source)?,
    };
    drop(source);

    let keys_from = keys.map(Path::to_path_buf).or_else(|| Some(keys_beside(from)).filter(|p| p.is_dir()));
    let offered = match &keys_from {
        Some(dir) => keystore::scan(dir).with_context(|| format!("cannot read the key files in {}", dir.display()))?,
        None => Vec::new(),
    };
    let root_signing =
        offered.iter().rev().find(|k| k.name == serverkeys::ROOT_SIGNING && k.public_key == Some(public)).cloned();
    if let (Some(dir), None) = (&keys_from, &root_signing)
        && keys.is_some()
        && !keys_in_database
    {
        bail!(
            "{} holds no {} key with the backup's public key {}; nothing restored",
            dir.display(),
            serverkeys::ROOT_SIGNING,
            B64.encode(public.as_bytes())
        );
    }

    datadir::prepare_dir(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    datadir::check_private(data_dir, "the data directory")?;
    {
        let mut out = datadir::create_private(&db).with_context(|| format!("cannot create {}", db.display()))?;
        let mut input = std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
        std::io::copy(&mut input, &mut out).with_context(|| format!("cannot copy {}", from.display()))?;
        out.sync_all()?;
    }
    write_checkpoint(data_dir, &cp)?;
    let restored = match &keys_from {
        Some(dir) => copy_key_files(dir, &serverkeys::keys_dir(data_dir))?,
        None => Vec::new(),
    };
    let root_signing = root_signing.and_then(|r| restored.iter().find(|k| k.id() == r.id()).cloned());
    Ok(Restore { public_key: B64.encode(public.as_bytes()), keys: restored, root_signing, keys_in_database })
}
