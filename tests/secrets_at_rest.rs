//! The database, its WAL and shared-memory files, and backups hold every endpoint secret and
//! the credentials in endpoint headers: they are created readable by their owner only (0600),
//! and files left readable by others are tightened when the service starts.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use util::{BIN, Service, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[test]
fn the_database_its_wal_and_backups_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    // Whatever umask the operator runs with: the files are 0600 anyway.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut service = Service::start(dir.path(), &[]);
    service.create_endpoint("https://93.184.216.34/hook", &["*"], None);
    let wal = with_suffix(&service.db, "-wal");
    let shm = with_suffix(&service.db, "-shm");
    eventually("the -wal and -shm files", WAIT, || {
        (wal.exists() && shm.exists())
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    });
    for file in [&service.db, &wal, &shm] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    let copy = dir.path().join("copy.db");
    let output = Command::new(BIN)
        .args(["backup", copy.to_str().unwrap(), "--db"])
        .arg(&service.db)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode(&copy), 0o600, "the backup");
    service.terminate(WAIT);
}

#[test]
fn files_left_readable_by_others_are_tightened_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &[]);
    service.create_endpoint("https://93.184.216.34/hook", &["*"], None);
    service.kill();
    let db = service.db.clone();
    let wal = with_suffix(&db, "-wal");
    // Killed: the WAL stays behind, as after a crash.
    assert!(wal.exists(), "a killed service leaves its WAL");
    for file in [&db, &wal] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut service = Service::start(dir.path(), &[]);
    for file in [&db, &wal] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert!(
        service.stderr().contains("made readable by its owner only"),
        "{}",
        service.stderr()
    );
    service.terminate(WAIT);
}
