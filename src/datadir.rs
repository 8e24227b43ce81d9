//! The data directory is private: created 0700, every file in it 0600 whatever the umask, and
//! `serve` refuses one that other users can read or write (as PostgreSQL and ssh do). Also the
//! file primitives that keep it so: private file creation and atomic replacement (temp file,
//! fsync, rename, directory fsync).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode bits that let group or others read, write or enter.
const OTHERS: u32 = 0o077;

/// Sets the process umask to 077, so that whatever the process (or SQLite, or a library) creates
/// is private to its user. Called first thing by the command line.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (0700; missing parents with the default mode) or, when it exists empty with a
/// mode open to other users (made by `mkdir` under umask 022, or a container volume), narrows it
/// to 0700 as `initdb` does. A directory that already holds files keeps its mode; `check_private`
/// decides about it.
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(std::io::Error::other(format!("{} is not a directory", dir.display()))),
        Ok(m) => {
            if m.mode() & OTHERS != 0 && std::fs::read_dir(dir)?.next().is_none() {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            match DirBuilder::new().mode(0o700).create(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        }
        Err(e) => Err(e),
    }
}

/// Why a path is not private enough.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} {path} is accessible by other users (mode {mode:04o}); trailkeep refuses to use it. Fix it with: chmod {fix} {path}",
    path = .path.display()
)]
pub struct NotPrivate {
    pub what: &'static str,
    pub path: PathBuf,
    pub mode: u32,
    pub fix: &'static str,
}

/// Whether a directory (`what`, e.g. "the data directory") or a file grants anything to group or
/// others; `Some` says so with the path and the `chmod` that fixes it.
pub fn not_private(path: &Path, what: &'static str) -> std::io::Result<Option<NotPrivate>> {
    let m = std::fs::metadata(path)?;
    let mode = m.mode() & 0o7777;
    Ok((mode & OTHERS != 0).then(|| NotPrivate {
        what,
        path: path.to_path_buf(),
        mode,
        fix: if m.is_dir() { "700" } else { "600" },
    }))
}

/// [`not_private`] as an error.
pub fn check_private(path: &Path, what: &'static str) -> anyhow::Result<()> {
    match not_private(path, what).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))? {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Narrows a data directory written by an older release (0755 directory, 0644 files under umask
/// 022) to 0700/0600: the directory, every regular file directly in it, and subdirectories.
/// Returns how many modes changed.
pub fn make_private(dir: &Path) -> std::io::Result<usize> {
    let mut changed = 0;
    let mut narrow = |path: &Path, m: &std::fs::Metadata, to: u32| -> std::io::Result<()> {
        if m.mode() & OTHERS != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(to))?;
            changed += 1;
        }
        Ok(())
    };
    narrow(dir, &std::fs::metadata(dir)?, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let m = entry.metadata()?; // the entry itself: a symlink is left alone
        if m.is_file() {
            narrow(&entry.path(), &m, 0o600)?;
        } else if m.is_dir() {
            narrow(&entry.path(), &m, 0o700)?;
        }
    }
    Ok(changed)
}

/// Creates a new file readable and writable by its owner only (fails if it exists).
pub fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Opens a file for writing, creating it 0600 if missing (an existing file keeps its mode).
pub fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(truncate).mode(0o600).open(path)
}

/// Opens an export's output file: created 0600, an existing regular file truncated and narrowed
/// to 0600 (a device or pipe such as `/dev/stdout` is left as it is).
pub fn open_export(path: &Path) -> std::io::Result<File> {
    let f = open_private(path, true)?;
    let m = f.metadata()?;
    if m.is_file() && m.mode() & OTHERS != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Creates an empty 0600 file unless one exists (so that SQLite, which derives the mode of the
/// database's `-wal` and `-shm` files from the database file, makes those 0600 too).
pub fn touch_private(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(()); // nothing to create (and nothing to write on a read-only filesystem)
    }
    match create_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsync of a directory, so that a rename or a new entry in it survives a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `path` atomically and durably: a 0600 temp file beside it, fsync, rename over `path`,
/// directory fsync. A crash at any point leaves the old file or the new one, never a mix (a
/// leftover `.<name>.tmp` is overwritten by the next write).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = open_private(&tmp, true)?;
        // An existing temp file (left by a crash) may carry another mode: this one is private.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn prepare_creates_0700_and_narrows_only_empty_directories() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("a/b/data");
        prepare_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        prepare_dir(&d).unwrap();

        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&empty).unwrap();
        assert_eq!(mode(&empty), 0o700, "an empty directory is narrowed");

        let used = root.path().join("used");
        std::fs::create_dir(&used).unwrap();
        std::fs::write(used.join("x"), b"x").unwrap();
        std::fs::set_permissions(&used, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&used).unwrap();
        assert_eq!(mode(&used), 0o755, "a directory holding files is left to check_private");
        let err = check_private(&used, "the data directory").unwrap_err().to_string();
        assert!(err.contains("mode 0755") && err.contains(&format!("chmod 700 {}", used.display())), "{err}");

        let f = root.path().join("file");
        prepare_dir(&f).unwrap(); // creates it as a directory: it did not exist
        std::fs::remove_dir(&f).unwrap();
        std::fs::write(&f, b"x").unwrap();
        assert!(prepare_dir(&f).is_err(), "a file is not a data directory");
    }

    #[test]
    fn check_private_names_the_chmod_for_files() {
        let root = tempfile::tempdir().unwrap();
        let f = root.path().join("k.pem");
        std::fs::write(&f, b"x").unwrap();
        for (m, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false), (0o620, false)] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).unwrap();
            let r = check_private(&f, "the key file");
            assert_eq!(r.is_ok(), ok, "{m:o}");
            if let Err(e) = r {
                assert!(e.to_string().contains(&format!("chmod 600 {}", f.display())), "{e}");
            }
        }
    }

    #[test]
    fn private_files_are_0600_whatever_the_umask_and_atomic_writes_replace() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("f");
        create_private(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert!(create_private(&p).is_err());
        touch_private(&p).unwrap();
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o600);
        // A leftover temp file from a crash, with a lax mode, does not leak its mode.
        let tmp = root.path().join(".g.tmp");
        std::fs::write(&tmp, b"junk").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&root.path().join("g"), b"new").unwrap();
        assert_eq!(mode(&root.path().join("g")), 0o600);
        assert!(!tmp.exists());
    }

    #[test]
    fn make_private_narrows_an_old_layout() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("old");
        std::fs::create_dir(&d).unwrap();
        for n in ["trailkeep.db", "trailkeep.db-wal", "checkpoint.latest"] {
            std::fs::write(d.join(n), b"x").unwrap();
            std::fs::set_permissions(d.join(n), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(make_private(&d).unwrap(), 4);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("trailkeep.db")), 0o600);
        assert_eq!(make_private(&d).unwrap(), 0);
        check_private(&d, "the data directory").unwrap();
    }
}
