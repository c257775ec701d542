//! `clockeye-webhooks backup PATH`: a consistent copy of the database, taken while the service
//! runs. SQLite's `VACUUM INTO` reads one snapshot (WAL lets the service keep writing) and
//! writes a compact file; we write it to a new file of our own beside PATH, check it, fsync it
//! and link it into place (which fails rather than replace anything), so PATH is either absent
//! or a whole, checked backup.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::store;

/// `backup`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(
    after_help = "Safe while `serve` runs on DB: the copy is one snapshot, and the service keeps taking events.
To restore, stop the service and start it on the copy:
  clockeye-webhooks serve --db PATH
Every delivery that was pending (or in flight) in the copy is sent.

example:
  clockeye-webhooks backup /var/backups/clockeye-$(date +%F).db"
)]
pub(crate) struct Options {
    #[arg(
        long,
        short = 'd',
        env = "CLOCKEYE_DB",
        value_name = "DB",
        default_value = "./clockeye-webhooks.db",
        value_parser = sqlite_file,
        help = "the database to copy"
    )]
    pub(crate) db: PathBuf,
    #[arg(value_name = "PATH", help = "where the copy goes; must not exist yet")]
    pub(crate) dest: PathBuf,
}

/// A backup copies a SQLite file; a Postgres URL (never repeated: it may hold a password) is a
/// usage error.
fn sqlite_file(value: &str) -> Result<PathBuf, String> {
    if matches!(store::DbTarget::parse(value), store::DbTarget::Postgres(_)) {
        return Err("backup is for SQLite files; for Postgres use pg_dump".into());
    }
    Ok(PathBuf::from(value))
}

/// What a finished backup holds, for the one line printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) bytes: u64,
    pub(crate) events: i64,
    pub(crate) deliveries_pending: i64,
}

/// Takes the backup. `Err` is one line for people.
pub(crate) fn run(options: &Options) -> Result<Summary, String> {
    let Options { db, dest } = options;
    if dest.symlink_metadata().is_ok() {
        return Err(format!(
            "{} exists already; give a new path (a backup never overwrites)",
            dest.display()
        ));
    }
    if !db.is_file() {
        return Err(format!("no database at {}", db.display()));
    }
    let source = store::backup::open_source(db)?;
    let partial = partial_path(dest);
    // Ours alone: created new (never an existing file, nor a link), and empty, as VACUUM INTO
    // requires.
    // Owner-only: a backup holds every endpoint secret.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let written = write_copy(&source, &partial).and_then(|summary| {
        // A hard link fails if PATH appeared meanwhile (or is a dangling link): nothing is
        // ever replaced.
        std::fs::hard_link(&partial, dest)
            .map_err(|e| format!("cannot put the backup at {}: {e}", dest.display()))?;
        Ok(summary)
    });
    let _ = std::fs::remove_file(&partial);
    let summary = written?;
    sync_parent(dest);
    Ok(summary)
}

fn write_copy(source: &Connection, partial: &Path) -> Result<Summary, String> {
    let (events, deliveries_pending) = store::backup::vacuum_into_checked(source, partial)?;
    let file = std::fs::File::open(partial).map_err(|e| e.to_string())?;
    file.sync_all()
        .map_err(|e| format!("cannot flush {}: {e}", partial.display()))?;
    let bytes = file.metadata().map_err(|e| e.to_string())?.len();
    Ok(Summary {
        bytes,
        events,
        deliveries_pending,
    })
}

/// `PATH.partial-<pid>-<random>`: beside PATH (same file system, for the link), unique to
/// this run.
fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".partial-{}-{}",
        std::process::id(),
        crate::ids::new_id("b")
    ));
    dest.with_file_name(name)
}

/// Makes the rename itself durable (best effort: not every file system allows it).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Backup {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Backup::try_parse_from(std::iter::once("backup").chain(args.iter().copied()))
            .map(|backup| backup.options)
    }

    // CLOCKEYE_DB is checked by tests/cli_args.rs, with the real binary.
    #[test]
    fn options_take_a_path_and_a_database() {
        assert_eq!(
            parse(&["copy.db", "--db", "live.db"]).unwrap(),
            Options {
                db: "live.db".into(),
                dest: "copy.db".into()
            }
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["a", "b"]).is_err());
        assert!(parse(&["a", "--force"]).is_err());
        let postgres = parse(&["copy.db", "--db", "postgres://u:pw@h/d"]).unwrap_err();
        assert_eq!(
            std::error::Error::source(&postgres).map(|s| s.to_string()),
            Some("backup is for SQLite files; for Postgres use pg_dump".to_string())
        );
    }
}
