//! Crash-safe file writes for the spool and the outbox.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name` so that after a crash the file is either absent or
/// complete: [`write_renamed`], then the folder itself is flushed so that the rename
/// survives a power loss. `dir` must exist.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let target = write_renamed(dir, name, bytes)?;
    File::open(dir)?.sync_all()?;
    Ok(target)
}

/// Writes `bytes` to a temporary file in `dir`, flushes it to disk and renames it over
/// `name`. The rename is durable only once `dir` is flushed as well. On Unix the file
/// is readable by its owner only, because it contains a fax's content.
fn write_renamed(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.tmp", ulid::Ulid::new()));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| target)
}

/// Writes `bytes` to `dir/name` as [`write_renamed`] does, creating `dir` when missing,
/// on the blocking pool so that the fsync does not stall the async runtime. The folder
/// is not flushed here: the caller commits through the queue writer with `dir` as the
/// folder to sync, so that one folder fsync serves a batch of files. Errors name the
/// spool folder.
pub(crate) async fn stage_in_spool(dir: &Path, name: String, bytes: Vec<u8>) -> Result<PathBuf, super::QueueError> {
    let spool_error = |source| super::QueueError::Spool { path: dir.display().to_string(), source };
    let folder = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        fs::create_dir_all(&folder)?;
        write_renamed(&folder, &name, &bytes)
    })
    .await
    .map_err(|err| spool_error(io::Error::other(err)))?
    .map_err(spool_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_leaves_only_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_atomic(dir.path(), "a.pdf", b"%PDF-1.4").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"%PDF-1.4");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.pdf")]);
    }
}
