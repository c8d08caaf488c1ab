//! Small file-system helpers shared by the store, the settings and exports:
//! private folders that are never symbolic links, and writes that are on
//! disk (file and folder entry) before they are relied on.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Prefix of every temporary file the app makes next to a file it writes;
/// sweeps delete leftovers by this prefix, and only those.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Creates `dir` (and missing parents) readable by the owner only, or
/// tightens an existing one to that. Refuses a symbolic link: a sweep must
/// never follow one out of the app's own folders.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(io::Error::other(
                "it is a symbolic link, which the app refuses to use for private data",
            ));
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(io::Error::other("it is not a folder"));
        }
        Ok(_meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if _meta.permissions().mode() & 0o077 != 0 {
                    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir)?;
            // The parent's entry for the new folder is on disk too.
            if let Some(parent) = dir.parent() {
                let _ = sync_dir(parent);
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Flushes a folder's entries (a rename or a deletion inside it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Who may read a file the app writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner only (0600): the store, settings, preferences, markers.
    Private,
    /// Everyone (0644 before the umask): models, runtime libraries, reports
    /// the user saves.
    Shared,
}

/// Writes `bytes` to `path`: a temporary file in the same folder, flushed,
/// renamed into place, and the folder flushed, so that after a crash the
/// file is either the old one or the new one. The one way every file that is
/// not an export is written (exports go through `partials`, which also
/// journals the temporary of the user's pixels).
pub fn write_atomically(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    replace_with(path, access, |file| file.write_all(bytes))
}

/// [`write_atomically`] with the contents streamed from `source` (a model
/// file of hundreds of megabytes is not read into memory).
pub fn copy_atomically(source: &mut impl io::Read, path: &Path, access: Access) -> io::Result<()> {
    replace_with(path, access, |file| io::copy(source, file).map(|_| ()))
}

fn replace_with(
    path: &Path,
    access: Access,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match access {
            Access::Private => 0o600,
            Access::Shared => 0o644,
        };
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut tmp = builder.tempfile_in(dir)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Opens (creating it 0600) a file for appending; refuses a symbolic link.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata()?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(file)
}

/// Opens (creating it 0600) a file used only for advisory locking.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.create(true).read(true).write(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Deletes a file; one already gone is fine.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_folders_and_files_are_owner_only_and_symlinks_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        private_dir(&inner).unwrap();
        assert_eq!(
            fs::metadata(&inner).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&inner, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&inner).unwrap();
        assert_eq!(
            fs::metadata(&inner).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let file = inner.join("f");
        write_atomically(&file, b"x", Access::Private).unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let shared = inner.join("shared");
        write_atomically(&shared, b"x", Access::Shared).unwrap();
        write_atomically(&shared, b"y", Access::Shared).unwrap();
        assert_eq!(fs::read(&shared).unwrap(), b"y");
        assert_eq!(
            fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers = fs::read_dir(&inner)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .count();
        assert_eq!(leftovers, 0);
        let appended = inner.join("log");
        open_private_append(&appended).unwrap();
        assert_eq!(
            fs::metadata(&appended).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&inner, &link).unwrap();
        let err = private_dir(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let file_link = inner.join("flink");
        std::os::unix::fs::symlink(&file, &file_link).unwrap();
        assert!(open_private_append(&file_link).is_err());
    }
}
