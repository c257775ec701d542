//! One owner per SQLite file. `serve` holds an exclusive OS lock (`flock`, through
//! `File::try_lock`) on a lock file beside the database, `<db>-lock`, for the life of the
//! process; the kernel drops it when the process ends, however it ends. A second `serve` on the
//! same file finds it taken and stops with one line naming the file and the pid written in the
//! lock file. Only `serve` takes it: `backup` and the readers of the CLI open the database
//! beside a running service as SQLite allows.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Held while the process owns the database; dropping it (or exiting) releases the lock.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: File,
}

/// The lock file of a database: its path with `-lock` appended (like SQLite's `-wal`).
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Takes the database's owner lock, or says who holds it.
pub(crate) fn acquire(db: &Path) -> Result<OwnerLock, Error> {
    let path = lock_path(db);
    let io_error = |source| Error::Io {
        context: format!(
            "cannot take the owner lock of database {} ({})",
            db.display(),
            path.display()
        ),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "another process".to_string(),
            };
            return Err(Error::Owned {
                db: db.to_path_buf(),
                holder,
            });
        }
        Err(TryLockError::Error(source)) => return Err(io_error(source)),
    }
    // Ours now: say who holds it, for the next one that tries.
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    if let Err(source) = written {
        log::warn!("could not write the pid to {}: {source}", path.display());
    }
    Ok(OwnerLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_holders_pid_and_may_take_it_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("owned.db");
        let first = acquire(&db).unwrap();
        let refused = acquire(&db).unwrap_err().to_string();
        assert!(refused.contains(&db.display().to_string()), "{refused}");
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        acquire(&db).unwrap();
    }
}
