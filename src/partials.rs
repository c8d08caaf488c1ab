//! Exports in the making. An export is written beside its target and moved
//! into place when complete, so a crash never leaves half a file under the
//! final name. What a crash must not leave either is the half file itself:
//! full pixels of the user's image under a temporary name in their folder.
//!
//! - On Linux the bytes go into an unnamed file (`O_TMPFILE`) that gets a
//!   name only when complete: a crash leaves nothing, the kernel frees it.
//! - Where that is not possible (other systems, file systems without
//!   `O_TMPFILE`, or replacing an existing file, which needs a named
//!   temporary for the rename), the temporary's path is first recorded in the
//!   store's `partials/` folder, in a record locked by the writing process
//!   for as long as the temporary exists. Every sweep (the hourly scheduled
//!   one included) deletes the temporaries of records whose process is gone.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, TEMP_PREFIX};

/// Name prefix and suffix of a named temporary export.
pub const PARTIAL_PREFIX: &str = ".backgrounderase-";
pub const PARTIAL_SUFFIX: &str = ".part";
const RECORD_PREFIX: &str = "p-";

/// Whether `name` is one of ours (the only names a sweep deletes).
pub fn is_partial_name(name: &str) -> bool {
    name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX)
}

/// A named temporary export, recorded until dropped.
pub struct Recorded {
    record: Option<(PathBuf, File)>,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some((path, file)) = self.record.take() {
            let _ = fs::remove_file(&path);
            let _ = file.unlock();
        }
    }
}

/// Records `partial` in the journal folder `journal` (the store's
/// `partials/`) before it is created. Without a journal nothing is recorded
/// (files that are not the user's images: model copies).
pub fn record(partial: &Path, journal: Option<&Path>) -> io::Result<Recorded> {
    let Some(dir) = journal else {
        return Ok(Recorded { record: None });
    };
    // Locked before it has its final name, so a sweep never sees it
    // unlocked while this process lives.
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.as_file().lock()?;
    tmp.write_all(&path_bytes(partial))?;
    tmp.as_file().sync_all()?;
    let name = format!("{RECORD_PREFIX}{}", random_hex());
    let path = dir.join(name);
    let file = tmp.persist(&path).map_err(|e| e.error)?;
    fsutil::sync_dir(dir)?;
    Ok(Recorded {
        record: Some((path, file)),
    })
}

/// Deletes the temporaries of records no living process holds, and those
/// records. Returns how many temporaries were deleted.
pub fn clean(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut deleted = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(RECORD_PREFIX) || name.starts_with(TEMP_PREFIX)) {
            continue;
        }
        let path = entry.path();
        let Ok(mut file) = fsutil::open_lock_file(&path) else {
            continue;
        };
        // Held: the export is still being written.
        if file.try_lock().is_err() {
            continue;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_ok() {
            let partial = path_from_bytes(bytes);
            let ours = partial
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_partial_name);
            let plain_file = fs::symlink_metadata(&partial).is_ok_and(|m| m.is_file());
            if ours && plain_file && fs::remove_file(&partial).is_ok() {
                deleted += 1;
                if let Some(parent) = partial.parent() {
                    let _ = fsutil::sync_dir(parent);
                }
            }
        }
        let _ = fs::remove_file(&path);
        let _ = file.unlock();
    }
    let _ = fsutil::sync_dir(dir);
    deleted
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the new one, and no temporary (see the module's notes). The file is an
/// ordinary one for the user (0644 before the umask). `journal`: where a
/// named temporary is recorded, if one is needed.
pub fn write_export(path: &Path, bytes: &[u8], journal: Option<&Path>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    #[cfg(target_os = "linux")]
    if let Some(file) = unnamed_file(dir)? {
        return link_unnamed(file, dir, path, bytes, journal);
    }
    write_named(dir, path, bytes, None, journal)
}

/// A named temporary, recorded, then renamed over `path`. `contents`, when
/// given, is an already written unnamed file to link under the temporary
/// name instead of writing `bytes`.
fn write_named(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    #[allow(unused_variables)] contents: Option<&File>,
    journal: Option<&Path>,
) -> io::Result<()> {
    let partial = dir.join(format!("{PARTIAL_PREFIX}{}{PARTIAL_SUFFIX}", random_hex()));
    let _record = record(&partial, journal)?;
    let written = (|| {
        #[cfg(target_os = "linux")]
        if let Some(file) = contents {
            return link_fd(file, &partial);
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o644);
        }
        let mut file = options.open(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let moved = written.and_then(|()| fs::rename(&partial, path));
    if moved.is_err() {
        let _ = fs::remove_file(&partial);
    }
    moved?;
    fsutil::sync_dir(dir)
}

#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match opened {
        Ok(file) => Ok(Some(file)),
        // The file system (or kernel) has no unnamed files.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(target_os = "linux")]
fn link_unnamed(
    mut file: File,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    journal: Option<&Path>,
) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    match link_fd(&file, path) {
        Ok(()) => fsutil::sync_dir(dir),
        // Replacing a file takes a rename, so a (recorded) name for a moment.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            write_named(dir, path, bytes, Some(&file), journal)
        }
        Err(e) => Err(e),
    }
}

/// Gives an unnamed file a name (fails if the name is taken).
#[cfg(target_os = "linux")]
fn link_fd(file: &File, path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        source.as_str(),
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

fn random_hex() -> String {
    let mut seed = [0u8; 8];
    // tempfile's own randomness is not exposed; the process id, a counter
    // and the time are unique enough for a name that is also create_new.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mix = nanos ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17);
    seed.copy_from_slice(&mix.to_le_bytes());
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_land_whole_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        let journal = tempfile::tempdir().unwrap();
        write_export(&path, b"one", Some(journal.path())).unwrap();
        write_export(&path, b"two", Some(journal.path())).unwrap();
        // Replacing went through a recorded name, and the record is gone.
        assert_eq!(fs::read_dir(journal.path()).unwrap().count(), 0);
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.png")]);
    }

    #[test]
    fn a_dead_writers_temporary_is_deleted_and_a_live_ones_kept() {
        let journal = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let dead = out.path().join(".backgrounderase-dead.part");
        let live = out.path().join(".backgrounderase-live.part");
        let not_ours = out.path().join("holiday.jpg");
        for p in [&dead, &live, &not_ours] {
            fs::write(p, b"pixels").unwrap();
        }
        // A record whose writer is gone (no lock), one held now, and one
        // naming a file the app never makes.
        let write_record = |name: &str, target: &Path| {
            let path = journal.path().join(name);
            fs::write(&path, path_bytes(target)).unwrap();
            path
        };
        write_record("p-dead", &dead);
        write_record("p-other", &not_ours);
        let held = write_record("p-live", &live);
        let holder = fs::OpenOptions::new().read(true).open(&held).unwrap();
        holder.lock().unwrap();

        assert_eq!(clean(journal.path()), 1);
        assert!(!dead.exists());
        assert!(live.exists(), "still being written");
        assert!(not_ours.exists(), "never deletes a name it does not make");
        assert!(held.exists());
        assert!(!journal.path().join("p-dead").exists());
        holder.unlock().unwrap();
        assert_eq!(clean(journal.path()), 1);
        assert!(!live.exists());
        assert_eq!(fs::read_dir(journal.path()).unwrap().count(), 0);
    }
}
